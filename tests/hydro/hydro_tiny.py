"""Tiny hydro cases written to a temporary folder (HydroPowerModels.jl layout)."""

import json


def tiny_case(folder, *, reservoirs=1, pd=0.8, inflow_rows=None, prob_rows=None, hydro_mods=None, pm_mods=None):
    """One bus; one thermal unit (0.5 p.u. at 1000 per p.u.h); ``reservoirs`` plants of pf 1, max_turn 60 m3/s,
    volumes [0, 1] hm3, starting at 0.5; deficit at 50 per MWh (5000 per p.u.h); load ``pd`` p.u.; 1-hour stages."""
    folder.mkdir(parents=True, exist_ok=True)
    gens = {"1": {"index": 1, "gen_bus": 1, "pmin": 0, "pmax": 0.5, "cost": [1000, 0], "gen_status": 1}}
    hydro = []
    for i in range(reservoirs):
        gens[str(i + 2)] = {"index": i + 2, "gen_bus": 1, "pmin": 0, "pmax": 1.0, "cost": [], "gen_status": 1}
        hydro.append(
            {
                "index": i + 1,
                "index_grid": i + 2,
                "max_volume": 1.0,
                "min_volume": 0.0,
                "max_turn": 60,
                "initial_volume": 0.5,
                "production_factor": 1.0,
                "spill_cost": 0,
                "downstream_turn": [],
                "downstream_spill": [],
            }
        )
    pm = {
        "baseMVA": 100,
        "cost_deficit": 50,
        "bus": {"1": {"bus_i": 1, "index": 1, "bus_type": 3}},
        "gen": gens,
        "branch": {},
        "load": {"1": {"index": 1, "load_bus": 1, "pd": pd, "status": 1}},
    }
    for k, v in (pm_mods or {}).items():
        pm[k] = v
    for i, mods in (hydro_mods or {}).items():
        hydro[i].update(mods)
    (folder / "PowerModels.json").write_text(json.dumps(pm))
    (folder / "hydro.json").write_text(json.dumps({"Hydrogenerators": hydro, "stage_hours": 1}))
    rows = inflow_rows or [",".join(["10", "30"] * reservoirs)] * 3
    (folder / "inflows.csv").write_text("\n".join(rows) + "\n")
    if prob_rows is not None:
        (folder / "scenarioprobability.csv").write_text("\n".join(prob_rows) + "\n")
    return folder


def problem_file(folder, case_folder, **keys):
    lines = ['family = "hydro"', f'case = "{case_folder}"'] + [f"{k} = {json.dumps(v)}" for k, v in keys.items()]
    path = folder / "problem.toml"
    path.write_text("\n".join(lines) + "\n")
    return path
