"""Altair charts built once per data: a rerun with the same data reuses the built spec.

Building an Altair chart and converting it to Vega-Lite (with schema validation) was most
of a dashboard rerun, and every widget click reruns the page. A chart is a pure function
of its inputs, so the converted spec is kept in this browser session's state under a hash
of those inputs (the frames' contents, not their identity): new, edited or voided data
hashes differently and gets a freshly built chart, so a clinician never sees a stale one.
The data itself is still read, access-checked, on every run; only the chart building is
skipped. Kept per session, never in ``st.cache_data``, so nothing is shared between users.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st
from streamlit.elements.vega_charts import _convert_altair_to_vega_lite_spec  # what st.altair_chart does

STATE_KEY = "_chart_specs"
MAX_SPECS = 24  # a few pages' charts for the current patient; older specs are dropped first


def fingerprint(*inputs: Any) -> str:
    """A content hash of a chart's inputs (DataFrames by value, anything else by repr)."""
    h = hashlib.sha256()
    for x in inputs:
        if isinstance(x, pd.DataFrame):
            h.update(repr((list(x.columns), [str(t) for t in x.dtypes], len(x))).encode())
            try:
                h.update(pd.util.hash_pandas_object(x, index=True).to_numpy().tobytes())
            except TypeError:  # unhashable cells (lists): hash their text
                h.update(x.to_json(date_format="iso", default_handler=str).encode())
        else:
            h.update(repr(x).encode())
        h.update(b"\x1f")
    return h.hexdigest()


def spec_for(build: Callable[..., Any], *inputs: Any) -> dict:
    """The Vega-Lite spec of ``build(*inputs)``, from this session's store when the inputs are unchanged."""
    key = (f"{build.__module__}.{build.__qualname__}", fingerprint(*inputs))
    store: dict = st.session_state.setdefault(STATE_KEY, {})
    spec = store.pop(key, None)
    if spec is None:
        spec = _convert_altair_to_vega_lite_spec(build(*inputs))
    store[key] = spec  # most recently used last
    while len(store) > MAX_SPECS:
        store.pop(next(iter(store)))
    return spec


def altair_chart(build: Callable[..., Any], *inputs: Any, container=None, **kwargs):
    """``st.altair_chart(build(*inputs), **kwargs)``, building the chart only when its inputs changed."""
    target = container if container is not None else st
    # the element marshalling moves datasets out of the spec it is given: hand it a copy
    return target.vega_lite_chart(spec=copy.deepcopy(spec_for(build, *inputs)), **kwargs)
