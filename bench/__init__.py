"""``make bench`` (``python -m bench``): clinic-scale performance figures as same-run ratios.

See the README's Performance section for what each line measures, its target and how to reproduce it.
"""
