"""NiN Explorer core: specs, summaries, data, training. Never imports streamlit."""
