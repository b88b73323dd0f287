"""The floor bench/classroom_speed.py measures the Build page against: a bare Streamlit page with one
slider (in the sidebar, with the Build page's key) and five metrics that follow it."""
import streamlit as st

size = st.sidebar.slider("Input size (height = width)", 16, 512, 224, key="w.input_size")
st.caption(f"input 1 x {size} x {size}")
for i, col in enumerate(st.columns(5)):
    col.metric(f"Number {i + 1}", f"{size * size * (i + 1):,}")
