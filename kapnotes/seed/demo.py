"""The demo clinic's fixed cast: sign-ins, patients, name pools and the plan steps.

Everything here is data; the modules that build the clinic read it.
"""

from __future__ import annotations

from datetime import date

DEMO_PASSWORD = "kapnotes-demo-2026"


DEMO_USERS = (
    ("tsato", "therapist", "Tomoko Sato", "LMFT"),
    ("rbennett", "therapist", "Rafael Bennett", "PsyD"),
    ("mokafor", "prescriber", "Michelle Okafor", "MD"),
    ("admin", "admin", "Alex Admin", ""),
)


DEMO_PATIENTS = (
    ("Jordan Ellis", date(1986, 4, 12)),
    ("María José Álvarez", date(1979, 9, 30)),
    ("Sam Whitaker", date(1992, 1, 5)),
    ("Zoë Lindqvist", date(1988, 11, 21)),
    ("Kwame Mensah", date(1975, 6, 2)),
    ("李明 (Li Ming)", date(1990, 3, 17)),
    ("Priya Raman", date(1983, 12, 8)),
    ("Noah Fischer", date(1996, 7, 25)),
)


HEAVIEST_MRN = "KAP-1001"  # daily doses: the benchmark's heaviest patient


PATIENTS_PER_THERAPIST = 25


THERAPISTS_PER_PRESCRIBER = 4


STEPS_MG = (50, 100, 150, 200, 250, 300)


INTERVALS = (3, 7, 14, 28)


FIRST_NAMES = ("Avery", "Blake", "Camila", "Dmitri", "Elena", "Farah", "Gabriel", "Hana", "Idris", "Julia",
          "Kenji", "Lena", "Mateo", "Nadia", "Oscar", "Paula", "Quinn", "Rosa", "Samir", "Tess",
          "Uma", "Victor", "Wren", "Ximena", "Yusuf", "Zara", "Amara", "Björn", "Chloé", "Diego",
          "Esme", "Femi", "Greta", "Hugo", "Ines", "Jonas", "Keiko", "Luis", "Mei", "Nils")


LAST_NAMES = ("Adams", "Brennan", "Castillo", "Dubois", "Eriksen", "Fujita", "García", "Haddad", "Ivanova", "Jensen",
         "Kowalski", "Larsen", "Moreau", "Nakamura", "O'Neill", "Petrov", "Quintero", "Rossi", "Schmidt", "Tanaka",
         "Umarov", "Vargas", "Walsh", "Xu", "Yilmaz", "Zimmermann", "Achebe", "Bauer", "Chen", "Diallo",
         "Evans", "Fischer", "Gómez", "Hughes", "Iqbal", "Johansson", "Kim", "López", "Müller", "Novak")


THERAPIST_CREDENTIALS = ("LMFT", "PsyD", "LCSW", "PhD", "LPC")


PRESCRIBER_CREDENTIALS = ("MD", "NP", "DO", "PMHNP")
