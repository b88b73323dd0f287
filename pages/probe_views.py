"""The GAP maps page's probe: why a run died, and its fixes as one click (a helper module)."""
import streamlit as st


@st.cache_resource(max_entries=8, show_spinner="Probing the checkpoint...")
def _probe(key: str, _ckpt, _data):
    """The probe of one checkpoint version (key) on the test set's first images, once."""
    from nin_explorer.look.probe import probe_test_set
    return probe_test_set(_ckpt, _data.images, _data.labels)


def _queue_fixes(run: dict, owner: str) -> None:
    from nin_explorer.learn.config import TrainConfig
    from nin_explorer.look.probe import fix_runs
    from nin_explorer.net.spec import NetSpec, SpecError
    from nin_explorer.runs.ablation import group_name
    from nin_explorer.runs.roles import RoleError
    from pages.common import get_jobs
    runs = fix_runs(NetSpec.from_dict(run["spec"]), TrainConfig.from_dict(run["config"]))
    group = group_name(f"Fixes for #{run['id']}")
    try:
        get_jobs().submit_many([(r.spec, r.config, f"#{run['id']} {r.name}") for r in runs],
                               owner=owner, group=group)
    except (RoleError, SpecError) as e:
        st.session_state["probe.refused"] = str(e)
        return
    st.session_state["probe.queued"] = group


def probe_section(ckpt, data, run: dict | None, version: str) -> None:
    """The probe, open for a collapsed ("diverged") run and offered for any other."""
    from nin_explorer.learn.config import TrainConfig
    from nin_explorer.look.probe import findings, fix_runs, rows
    from nin_explorer.net.spec import NetSpec
    from pages.common import visitor
    died = bool(run) and run["status"] == "diverged"
    with st.expander("Why did this run die? A probe of its checkpoint" if died else
                     "Probe this checkpoint: dead units, logit and class-map ranges", expanded=died):
        if data is None:
            st.info("The probe runs the test set's first images; this checkpoint's test set is not here.")
            return
        if not died and not st.toggle("Run the probe", key="probe_on"):
            return
        p = _probe(version, ckpt, data)
        for line in findings(p, ckpt.spec.head, ckpt.spec.final_relu):
            (st.error if line.startswith("NiN's trap") else st.markdown)(line)
        loss = f"loss {p.loss:.3f} (ln {len(p.map_ranges)} = {p.chance_loss:.3f}), " if p.loss is not None else ""
        st.caption(f"On {p.images} test images: {loss}gradient norm {p.grad_norm:.3g}; a unit is "
                   "dead when it outputs 0 at every position of every probe image.")
        left, right = st.columns(2)
        left.dataframe(rows(p), hide_index=True, key="probe_layers",
                       column_config={"dead %": st.column_config.ProgressColumn(
                           "dead %", min_value=0, max_value=100, format="%.0f%%")})
        right.dataframe([{"class": c, "map min": lo, "map max": hi}
                         for c, (lo, hi) in zip(ckpt.classes, p.map_ranges)],
                        hide_index=True, key="probe_maps")
        if run is None:
            return
        tries = [r.setting["fix"] for r in fix_runs(NetSpec.from_dict(run["spec"]),
                                                    TrainConfig.from_dict(run["config"]))]
        st.markdown(f"**Try the fixes**: the same run again at its own seed ({run['config'].get('seed', 0)}): "
                    + ", ".join(tries) + " (lower lr: / 10; warm-up: one epoch"
                    + ("" if "BatchNorm" in tries else "; it has BatchNorm already")
                    + ("; no final ReLU: the last block's last conv gives the class maps, which may "
                       "then be negative" if "no final ReLU" in tries else "") + ").")
        st.button("Queue the fixes as an ablation", key="probe_fix", on_click=_queue_fixes,
                  args=(run, visitor().id), type="primary" if died else "secondary")
        if "probe.refused" in st.session_state:
            st.error(st.session_state.pop("probe.refused"))
        if "probe.queued" in st.session_state:
            st.success(f"Queued: see \"{st.session_state['probe.queued']}\" on the Ablations page.")
