"""Reading a hydro-thermal case folder (HydroPowerModels.jl layout) into plain arrays, with every check.

A case folder holds ``PowerModels.json`` (the network), ``hydro.json`` (reservoirs and their cascade),
``inflows.csv`` (one row per stage, ``H`` blocks of ``S`` scenario columns, reservoir 1's first) and
optionally ``scenarioprobability.csv`` (one row per inflow row, ``S`` probabilities; without it the scenarios
are equally likely) and ``_demand.csv`` (active demand in p.u. per stage, one column per bus number, read only
when a problem sets ``demand_file = true``). Units are those of the source (see ``data/hydro/SOURCE.md`` and
``docs/hydro.md``): volumes in hm3, flows in m3/s, powers in p.u. of ``baseMVA``, generator costs per p.u.
and hour, ``cost_deficit`` per MWh.

Every problem with the data stops with one :class:`~opsrl.core.ConfigError` naming the file, the key and
what is allowed: NaN or infinite numbers, reversed volume bounds, an inflow file whose columns are not ``H``
blocks of ``S``, a cascade naming a reservoir that does not exist or forming a cycle, probabilities that do
not sum to one, negative capacities or costs, a branch without impedance, and (when unserved load is not
allowed) a load that no unit can serve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BeforeValidator, model_validator
from pydantic import Field as PydanticField

from ..core import ConfigError
from ..core.config import FLOAT_LIMIT
from ..core.datafile import Id, Integer, Number, Record, check, load_json, read_text, refuse, resolve, unique

DATA_DIR = Path(__file__).resolve().parent / "data"
BUNDLED = ("case3", "bolivia")
# numbers below this magnitude are read as 0: bolivia's ``initial_volume`` and ``spill_cost`` fields hold
# uninitialised doubles near 1e-316 (see data/hydro/SOURCE.md)
DENORMAL = 1e-300


@dataclass
class Case:
    """One case's data as numpy arrays (float64). Index conventions: buses ``0..N-1`` in the order of
    ``bus_ids``; ``H`` reservoirs in the order of ``hydro.json``; ``G`` thermal units (grid generators not
    driven by a reservoir, in status 1); ``L`` branches in status 1."""

    name: str
    folder: Path
    base_mva: float
    cost_deficit: float  # per MWh
    stage_hours: float  # hydro.json's value (a problem may override it)
    bus_ids: list[int]
    ref_buses: list[int]  # one reference bus (index) per connected component
    # thermal units
    gen_ids: list[int]
    gen_bus: np.ndarray  # [G] bus index
    gen_pmin: np.ndarray  # [G] p.u.
    gen_pmax: np.ndarray  # [G] p.u.
    gen_cost: np.ndarray  # [G] per p.u. and hour
    gen_const: np.ndarray  # [G] per hour
    # reservoirs
    hydro_names: list[str]
    hydro_ids: list[int]
    hydro_bus: np.ndarray  # [H] bus index of the driven generator, -1 if none
    hydro_pmin: np.ndarray  # [H] p.u. of the driven generator (0 if none)
    hydro_pmax: np.ndarray  # [H] p.u. (inf if none)
    hydro_cost: np.ndarray  # [H] per p.u. and hour of the driven generator
    hydro_const: np.ndarray  # [H] per hour
    vmin: np.ndarray  # [H] hm3
    vmax: np.ndarray  # [H] hm3
    v0: np.ndarray  # [H] hm3
    max_turn: np.ndarray  # [H] m3/s
    production_factor: np.ndarray  # [H] MW per m3/s
    spill_cost: np.ndarray  # [H] per hm3
    down_turn: list[list[int]]  # reservoir indices receiving the turbined water of each reservoir
    down_spill: list[list[int]]  # ... and its spilled water
    # branches
    br_from: np.ndarray  # [L] bus index
    br_to: np.ndarray  # [L]
    br_b: np.ndarray  # [L] susceptance x / (r^2 + x^2), as PowerModels' DC model
    br_rate: np.ndarray  # [L] p.u.
    br_angmin: np.ndarray  # [L] rad
    br_angmax: np.ndarray  # [L] rad
    # loads
    load_bus: np.ndarray  # [D] bus index
    load_pd: np.ndarray  # [D] p.u.
    # inflows
    inflow: np.ndarray  # [R, H, S] m3/s
    prob: np.ndarray  # [R, S]
    demand: np.ndarray | None = None  # [R_d, N] per-bus p.u. from ``_demand.csv`` (with demand_file = true)
    files: dict[str, str] = field(default_factory=dict)

    @property
    def H(self) -> int:
        return len(self.hydro_ids)

    @property
    def N(self) -> int:
        return len(self.bus_ids)

    @property
    def G(self) -> int:
        return len(self.gen_ids)

    @property
    def L(self) -> int:
        return len(self.br_from)

    @property
    def rows(self) -> int:
        """Inflow rows (stages of the file; longer horizons cycle them)."""
        return self.inflow.shape[0]

    @property
    def scenarios(self) -> int:
        return self.inflow.shape[2]

    def hydro_capacity(self) -> np.ndarray:
        """Largest power of each reservoir's plant in p.u.: min(pmax, pf * max_turn / baseMVA)."""
        return np.minimum(self.hydro_pmax, self.production_factor * self.max_turn / self.base_mva) * (
            self.hydro_bus >= 0
        )


# --- the schemas of the two JSON files (checked before any field is used) ---------------------------------
def _int_or_same(v: Any) -> Any:
    """An integer-valued number as an int (so that ``1.0`` matches ``Literal[1]``); anything else unchanged."""
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def _not_nan(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        raise refuse("NaN is not allowed; expected a number (or Infinity: no limit)")
    return v


Status = Annotated[Literal[0, 1], BeforeValidator(_int_or_same)]
BusNumber = Annotated[Integer, PydanticField(ge=1)]
Limit = Annotated[float, BeforeValidator(_not_nan)]  # a rating: a number, or Infinity for none


class Bus(Record):
    bus_i: BusNumber | None = None
    index: BusNumber | None = None
    bus_type: Annotated[Literal[1, 2, 3, 4], BeforeValidator(_int_or_same)] = 1

    @model_validator(mode="after")
    def _numbered(self) -> Bus:
        if self.bus_i is None and self.index is None:
            raise refuse("a bus needs its number in bus_i (or index)")
        return self


class Gen(Record):
    index: Integer | None = None
    gen_bus: Integer | None = None
    gen_status: Status = 1
    pmin: Number = 0.0
    pmax: Number | None = None
    cost: list[Number] = []


class Branch(Record):
    index: Integer | None = None
    f_bus: Integer | None = None
    t_bus: Integer | None = None
    br_status: Status = 1
    br_r: Number = 0.0
    br_x: Number | None = None
    tap: Number = 1.0
    shift: Number = 0.0
    rate_a: Limit = math.inf
    angmin: Number = -math.pi / 3
    angmax: Number = math.pi / 3


class Load(Record):
    index: Integer | None = None
    load_bus: Integer | None = None
    pd: Number | None = None
    status: Status = 1


class PowerModels(Record):
    """``PowerModels.json``: the network (PowerModels' data dictionary; keys it does not use are ignored)."""

    baseMVA: Number
    cost_deficit: Number
    name: Id | None = None
    bus: dict[str, Bus] = PydanticField(min_length=1)
    gen: dict[str, Gen] = {}
    branch: dict[str, Branch] = {}
    load: dict[str, Load] = {}


class Reservoir(Record):
    index: Integer
    index_grid: Integer | None = None
    name: Id | None = None
    max_volume: Number
    min_volume: Number = 0.0
    initial_volume: Number = 0.0
    max_turn: Number
    production_factor: Number
    spill_cost: Number = 0.0
    min_turn: Number = 0.0
    final_volume: Number = 0.0
    minimal_outflow_violation_cost: Number = 0.0
    minimal_volume_violation_cost: Number = 0.0
    downstream_turn: list[Integer] = []
    downstream_spill: list[Integer] = []


class HydroFile(Record):
    """``hydro.json``: the reservoirs and their cascade."""

    Hydrogenerators: list[Reservoir] = PydanticField(min_length=1)
    stage_hours: Number = 1.0


def _integer_key(k: str, path: Path, where: str) -> int:
    """An entry's index from its key when it has no ``index`` field."""
    try:
        return int(k)
    except ValueError:
        raise ConfigError(path, f"{where}.index", f"missing, and the entry's key {k!r} is not a number") from None


def case_folder(name: str, relative_to: str | Path | None = None, source: str = "<problem>") -> Path:
    """A bundled case name (``case3``, ``bolivia``) or a folder (absolute, or relative to ``relative_to``)."""
    if name in BUNDLED:
        return DATA_DIR / name
    p = resolve(name, relative_to)
    if not p.is_dir():
        raise ConfigError(source, "case", f"{name!r} is neither a bundled case ({', '.join(BUNDLED)}) nor a folder")
    return p


def _json(path: Path, schema: type[Record]) -> dict:
    """The JSON file ``path`` checked against ``schema``; returned as read (the checks below read it)."""
    if not path.exists():
        raise ConfigError(
            path, None, "file not found (a case folder needs PowerModels.json, hydro.json and inflows.csv)"
        )
    data = load_json(path)
    check(schema, data, path)
    return data


def _num(
    d: dict, key: str, path: Path, where: str, default: Any = None, low: float | None = None, allow_inf: bool = False
) -> float:
    name = f"{where}.{key}" if where else key
    if key not in d:
        if default is None:
            raise ConfigError(path, name, "missing; a number is required")
        return float(default)
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ConfigError(path, name, f"expected a number, got {v!r}")
    v = float(v)
    if math.isnan(v) or (math.isinf(v) and not allow_inf):
        raise ConfigError(path, name, f"{v} is not allowed; expected a finite number")
    if abs(v) < DENORMAL:
        v = 0.0
    if low is not None and v < low:
        raise ConfigError(path, name, f"{v:g} is not allowed; expected a number >= {low:g}")
    return v


def _table(d: dict, key: str, path: Path) -> dict:
    t = d.get(key, {})
    if not isinstance(t, dict):
        raise ConfigError(path, key, f"expected a table of entries, got {type(t).__name__}")
    return {k: v for k, v in t.items()}


def _csv(path: Path, what: str) -> np.ndarray:
    if not path.exists():
        raise ConfigError(path, None, f"file not found ({what})")
    text = read_text(path)
    rows = [r for r in text.strip().splitlines() if r.strip()]
    if not rows:
        raise ConfigError(path, None, "empty file")
    out = []
    width = None
    for i, r in enumerate(rows):
        cells = r.split(",")
        if width is None:
            width = len(cells)
        elif len(cells) != width:
            raise ConfigError(
                path, f"row {i + 1}", f"has {len(cells)} columns, row 1 has {width}; every row needs the same"
            )
        try:
            vals = [float(c) for c in cells]
        except ValueError:
            raise ConfigError(path, f"row {i + 1}", "expected comma-separated numbers (no header)") from None
        for j, v in enumerate(vals):
            if not math.isfinite(v) or abs(v) > FLOAT_LIMIT:
                raise ConfigError(
                    path,
                    f"row {i + 1}, column {j + 1}",
                    f"{v:g} is not allowed; expected a finite number of magnitude at most {FLOAT_LIMIT:g}",
                )
        out.append(vals)
    return np.asarray(out, dtype=np.float64)


def _cost(g: dict, path: Path, where: str) -> tuple[float, float]:
    """PowerModels' polynomial cost (highest power first): linear ``[c1, c0]`` or constant ``[c0]`` or none."""
    cost = g.get("cost", [])
    if not isinstance(cost, list):
        raise ConfigError(path, f"{where}.cost", "expected a list of polynomial coefficients")
    vals = []
    for i, c in enumerate(cost):
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not math.isfinite(float(c)):
            raise ConfigError(path, f"{where}.cost[{i}]", f"{c!r} is not allowed; expected a finite number")
        vals.append(float(c))
    while len(vals) > 2 and vals[0] == 0.0:
        vals = vals[1:]
    if len(vals) > 2:
        raise ConfigError(
            path, f"{where}.cost", "a quadratic (or higher) cost is not linear; a linear cost [c1, c0] is allowed"
        )
    if len(vals) == 2:
        c1, c0 = vals
    elif len(vals) == 1:
        c1, c0 = 0.0, vals[0]
    else:
        c1, c0 = 0.0, 0.0
    if c1 < 0:
        raise ConfigError(path, f"{where}.cost", f"a negative cost per p.u. ({c1:g}) is not allowed")
    return c1, c0


def _sorted(table: dict) -> list[tuple[str, dict]]:
    def key(kv):
        try:
            return (0, int(kv[0]))
        except ValueError:
            return (1, kv[0])

    return sorted(table.items(), key=key)


def load_case(folder: str | Path, *, allow_deficit: bool = True, demand_file: bool = False) -> Case:
    """Read and check a case folder (see the module text)."""
    folder = Path(folder)
    pm_path, hy_path = folder / "PowerModels.json", folder / "hydro.json"
    in_path, pr_path, de_path = folder / "inflows.csv", folder / "scenarioprobability.csv", folder / "_demand.csv"
    pm, hy = _json(pm_path, PowerModels), _json(hy_path, HydroFile)
    for table in ("bus", "gen", "branch", "load"):
        entries = _sorted(_table(pm, table, pm_path))
        if table == "bus":
            ids = ((b.get("bus_i", b.get("index")), f"bus.{k}") for k, b in entries)
        else:
            ids = ((e.get("index"), f"{table}.{k}.index") for k, e in entries)
        unique(ids, pm_path, f"{table} number" if table == "bus" else f"{table} index")
    unique(((r["index"], f"Hydrogenerators[{i}].index") for i, r in enumerate(hy["Hydrogenerators"])), hy_path, "index")

    base = _num(pm, "baseMVA", pm_path, "", low=None)
    if base <= 0:
        raise ConfigError(pm_path, "baseMVA", f"{base:g} is not allowed; expected a positive number")
    cost_deficit = _num(pm, "cost_deficit", pm_path, "", low=0.0)

    # buses
    buses = _sorted(_table(pm, "bus", pm_path))
    if not buses:
        raise ConfigError(pm_path, "bus", "no buses; at least one is required")
    bus_ids, bus_type = [], []
    for k, b in buses:
        if int(b.get("bus_type", 1)) == 4:  # isolated bus (PowerModels' convention): left out
            continue
        bus_ids.append(int(_num(b, "bus_i" if "bus_i" in b else "index", pm_path, f"bus.{k}")))
        bus_type.append(int(b.get("bus_type", 1)))
    index = {b: i for i, b in enumerate(bus_ids)}

    def bus_of(v: Any, where: str, key: str) -> int:
        try:
            return index[int(v)]
        except (KeyError, TypeError, ValueError):
            raise ConfigError(
                pm_path, f"{where}.{key}", f"{v!r} is not an (active) bus; buses are {', '.join(map(str, bus_ids))}"
            ) from None

    # reservoirs
    if "Hydrogenerators" not in hy or not isinstance(hy["Hydrogenerators"], list):
        raise ConfigError(hy_path, "Hydrogenerators", "missing; a list of reservoirs is required")
    res = hy["Hydrogenerators"]
    H = len(res)
    if H == 0:
        raise ConfigError(hy_path, "Hydrogenerators", "empty; at least one reservoir is required")
    stage_hours = _num(hy, "stage_hours", hy_path, "", default=1.0)
    if stage_hours <= 0:
        raise ConfigError(hy_path, "stage_hours", f"{stage_hours:g} is not allowed; expected a positive number")
    hydro_ids, names = [], []
    vmin, vmax, v0, mt, pf, sc = (np.zeros(H) for _ in range(6))
    grid_of: list[int | None] = []
    for i, r in enumerate(res):
        w = f"Hydrogenerators[{i}]"
        if not isinstance(r, dict):
            raise ConfigError(hy_path, w, "expected a table")
        hydro_ids.append(int(_num(r, "index", hy_path, w)))
        names.append(str(r.get("name", hydro_ids[-1])).strip())
        vmin[i] = _num(r, "min_volume", hy_path, w, default=0.0, low=0.0)
        vmax[i] = _num(r, "max_volume", hy_path, w, low=0.0)
        if vmin[i] > vmax[i]:
            raise ConfigError(
                hy_path,
                f"{w}.min_volume",
                f"{vmin[i]:g} exceeds max_volume {vmax[i]:g}; min_volume <= max_volume is required",
            )
        v0[i] = _num(r, "initial_volume", hy_path, w, default=0.0, low=0.0)
        mt[i] = _num(r, "max_turn", hy_path, w, low=0.0)
        pf[i] = _num(r, "production_factor", hy_path, w, low=0.0)
        sc[i] = _num(r, "spill_cost", hy_path, w, default=0.0, low=0.0)
        for extra in ("min_turn", "final_volume", "minimal_outflow_violation_cost", "minimal_volume_violation_cost"):
            if extra in r:
                _num(r, extra, hy_path, w)  # checked (NaN); see docs/hydro.md for how they enter (not at all)
        g = r.get("index_grid")
        grid_of.append(None if g is None else int(g))
    if len(set(hydro_ids)) != H:
        raise ConfigError(hy_path, "Hydrogenerators", "two reservoirs share an 'index'; indices must be unique")
    if v0.min() < 0 or (v0 < vmin).any() or (v0 > vmax).any():
        i = int(np.nonzero((v0 < vmin) | (v0 > vmax))[0][0])
        raise ConfigError(
            hy_path,
            f"Hydrogenerators[{i}].initial_volume",
            f"{v0[i]:g} is outside [min_volume, max_volume] = [{vmin[i]:g}, {vmax[i]:g}]",
        )
    rindex = {h: i for i, h in enumerate(hydro_ids)}
    down_turn, down_spill = [], []
    for i, r in enumerate(res):
        for key, out in (("downstream_turn", down_turn), ("downstream_spill", down_spill)):
            lst = r.get(key, [])
            if not isinstance(lst, list):
                raise ConfigError(hy_path, f"Hydrogenerators[{i}].{key}", "expected a list of reservoir indices")
            got = []
            for j, v in enumerate(lst):
                if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) not in rindex:
                    raise ConfigError(
                        hy_path,
                        f"Hydrogenerators[{i}].{key}[{j}]",
                        f"{v!r} names no reservoir; "
                        f"allowed: the 'index' of a reservoir ({', '.join(map(str, hydro_ids))})",
                    )
                if rindex[int(v)] == i:
                    raise ConfigError(
                        hy_path, f"Hydrogenerators[{i}].{key}[{j}]", "a reservoir cannot flow into itself"
                    )
                got.append(rindex[int(v)])
            out.append(got)
    _check_acyclic(down_turn, down_spill, hydro_ids, hy_path)

    # generators: the ones a reservoir drives, and thermal units
    gens = _sorted(_table(pm, "gen", pm_path))
    gen_index = {}
    for k, g in gens:
        gi = int(g["index"]) if g.get("index") is not None else _integer_key(k, pm_path, f"gen.{k}")
        if gi in gen_index:
            raise ConfigError(
                pm_path,
                f"gen.{k}.index",
                f"found {gi}, the index of gen.{gen_index[gi][0]} too; each gen index must be unique",
            )
        gen_index[gi] = (k, g)
    hb, hpmin, hpmax, hcost, hconst = np.full(H, -1), np.zeros(H), np.full(H, np.inf), np.zeros(H), np.zeros(H)
    hydro_gens = set()
    for i, gi in enumerate(grid_of):
        if gi is None:
            continue
        if gi not in gen_index:
            raise ConfigError(hy_path, f"Hydrogenerators[{i}].index_grid", f"{gi} names no generator of {pm_path.name}")
        if gi in hydro_gens:
            raise ConfigError(
                hy_path, f"Hydrogenerators[{i}].index_grid", f"generator {gi} is driven by two reservoirs"
            )
        hydro_gens.add(gi)
        k, g = gen_index[gi]
        w = f"gen.{k}"
        if int(g.get("gen_status", 1)) == 0:
            continue
        hb[i] = bus_of(g.get("gen_bus"), w, "gen_bus")
        hpmin[i] = _num(g, "pmin", pm_path, w, default=0.0, low=0.0)
        hpmax[i] = _num(g, "pmax", pm_path, w, low=0.0)
        if hpmin[i] > hpmax[i]:
            raise ConfigError(pm_path, f"{w}.pmin", f"{hpmin[i]:g} exceeds pmax {hpmax[i]:g}")
        hcost[i], hconst[i] = _cost(g, pm_path, w)
        if pf[i] > 0 and hpmin[i] * base / pf[i] > mt[i] + 1e-12:
            raise ConfigError(
                pm_path,
                f"{w}.pmin",
                f"needs an outflow of {hpmin[i] * base / pf[i]:g} m3/s, above the reservoir's max_turn {mt[i]:g}",
            )
    gen_ids, gbus, gpmin, gpmax, gcost, gconst = [], [], [], [], [], []
    for gi, (k, g) in gen_index.items():
        if gi in hydro_gens or int(g.get("gen_status", 1)) == 0:
            continue
        w = f"gen.{k}"
        gen_ids.append(gi)
        gbus.append(bus_of(g.get("gen_bus"), w, "gen_bus"))
        gpmin.append(_num(g, "pmin", pm_path, w, default=0.0, low=0.0))
        gpmax.append(_num(g, "pmax", pm_path, w, low=0.0))
        if gpmin[-1] > gpmax[-1]:
            raise ConfigError(pm_path, f"{w}.pmin", f"{gpmin[-1]:g} exceeds pmax {gpmax[-1]:g}")
        c1, c0 = _cost(g, pm_path, w)
        gcost.append(c1)
        gconst.append(c0)

    # branches
    bf, bt, bb, brate, amin, amax = [], [], [], [], [], []
    for k, b in _sorted(_table(pm, "branch", pm_path)):
        w = f"branch.{k}"
        if int(b.get("br_status", 1)) == 0:
            continue
        bf.append(bus_of(b.get("f_bus"), w, "f_bus"))
        bt.append(bus_of(b.get("t_bus"), w, "t_bus"))
        r_ = _num(b, "br_r", pm_path, w, default=0.0)
        x_ = _num(b, "br_x", pm_path, w)
        if r_ * r_ + x_ * x_ == 0:
            raise ConfigError(pm_path, f"{w}.br_x", "a branch needs a nonzero impedance (br_r, br_x)")
        if bf[-1] == bt[-1]:
            raise ConfigError(pm_path, f"{w}.t_bus", "a branch must join two different buses")
        tap = _num(b, "tap", pm_path, w, default=1.0)
        shift = _num(b, "shift", pm_path, w, default=0.0)
        if tap != 1.0 or shift != 0.0:
            raise ConfigError(
                pm_path,
                f"{w}.tap",
                "transformers with tap != 1 or shift != 0 are not modelled; tap = 1 and shift = 0 are allowed",
            )
        bb.append(x_ / (r_ * r_ + x_ * x_))
        rate = _num(b, "rate_a", pm_path, w, default=math.inf, low=0.0, allow_inf=True)
        brate.append(math.inf if rate == 0 else rate)  # MATPOWER: rate_a = 0 means unlimited
        amin.append(_num(b, "angmin", pm_path, w, default=-math.pi / 3))
        amax.append(_num(b, "angmax", pm_path, w, default=math.pi / 3))
        if amin[-1] > amax[-1]:
            raise ConfigError(pm_path, f"{w}.angmin", f"{amin[-1]:g} exceeds angmax {amax[-1]:g}")

    # loads
    lbus, lpd = [], []
    for k, ld in _sorted(_table(pm, "load", pm_path)):
        w = f"load.{k}"
        if int(ld.get("status", 1)) == 0:
            continue
        lbus.append(bus_of(ld.get("load_bus"), w, "load_bus"))
        lpd.append(_num(ld, "pd", pm_path, w))

    # inflows and probabilities
    table = _csv(in_path, "inflow rows per stage")
    R, ncol = table.shape
    if ncol % H != 0:
        raise ConfigError(
            in_path,
            "columns",
            f"{ncol} columns are not {H} blocks (one per reservoir of "
            f"{hy_path.name}) of equally many scenarios; a multiple of {H} is allowed",
        )
    S = ncol // H
    if (table < 0).any():
        i, j = map(int, np.argwhere(table < 0)[0])
        raise ConfigError(
            in_path, f"row {i + 1}, column {j + 1}", f"{table[i, j]:g} is negative; inflows >= 0 are allowed"
        )
    inflow = table.reshape(R, H, S)
    if pr_path.is_file():
        prob = _csv(pr_path, "scenario probabilities per stage")
        if prob.shape[1] != S:
            raise ConfigError(
                pr_path,
                "columns",
                f"{prob.shape[1]} columns, but {in_path.name} has {S} scenarios per reservoir; {S} are required",
            )
        if prob.shape[0] < R:
            raise ConfigError(pr_path, "rows", f"{prob.shape[0]} rows, but {in_path.name} has {R}; one per inflow row")
        prob = prob[:R]
        if (prob < 0).any() or (np.abs(prob.sum(1) - 1) > 1e-6).any():
            i = int(np.nonzero((prob < 0).any(1) | (np.abs(prob.sum(1) - 1) > 1e-6))[0][0])
            raise ConfigError(pr_path, f"row {i + 1}", "probabilities must be >= 0 and sum to 1")
        prob = prob / prob.sum(1, keepdims=True)
    else:
        prob = np.full((R, S), 1.0 / S)
    demand = None
    if demand_file:
        # HydroPowerModels.jl's set_active_demand! (src/IO.jl l. 76-85): a load's pd at stage t is
        # demand[t, its bus number]; here per bus index, summed over the loads of a bus
        table_d = _csv(de_path, "active demand in p.u. per stage, one column per bus number")
        need = max((bus_ids[b] for b in lbus), default=0)
        if table_d.shape[1] < need:
            raise ConfigError(
                de_path,
                "columns",
                f"{table_d.shape[1]} columns, but a load sits at bus {need}; "
                "columns up to the largest bus number with a load are required",
            )
        demand = np.zeros((table_d.shape[0], len(bus_ids)))
        for b in lbus:
            demand[:, b] += table_d[:, bus_ids[b] - 1]

    case = Case(
        name=str(pm.get("name", folder.name)),
        folder=folder,
        base_mva=base,
        cost_deficit=cost_deficit,
        stage_hours=stage_hours,
        bus_ids=bus_ids,
        ref_buses=[],
        gen_ids=gen_ids,
        gen_bus=np.asarray(gbus, dtype=np.int64),
        gen_pmin=np.asarray(gpmin),
        gen_pmax=np.asarray(gpmax),
        gen_cost=np.asarray(gcost),
        gen_const=np.asarray(gconst),
        hydro_names=names,
        hydro_ids=hydro_ids,
        hydro_bus=hb.astype(np.int64),
        hydro_pmin=hpmin,
        hydro_pmax=hpmax,
        hydro_cost=hcost,
        hydro_const=hconst,
        vmin=vmin,
        vmax=vmax,
        v0=v0,
        max_turn=mt,
        production_factor=pf,
        spill_cost=sc,
        down_turn=down_turn,
        down_spill=down_spill,
        br_from=np.asarray(bf, dtype=np.int64),
        br_to=np.asarray(bt, dtype=np.int64),
        br_b=np.asarray(bb),
        br_rate=np.asarray(brate),
        br_angmin=np.asarray(amin),
        br_angmax=np.asarray(amax),
        load_bus=np.asarray(lbus, dtype=np.int64),
        load_pd=np.asarray(lpd),
        inflow=inflow,
        prob=prob,
        demand=demand,
        files={"network": str(pm_path), "hydro": str(hy_path), "inflows": str(in_path)},
    )
    comps = components(case)
    case.ref_buses = [min(c, key=lambda b: (bus_type[b] != 3, b)) for c in comps]
    if not allow_deficit:
        check_servable(case, comps, pm_path)
    return case


def _check_acyclic(down_turn, down_spill, ids, path: Path) -> None:
    H = len(ids)
    succ = [sorted(set(down_turn[i]) | set(down_spill[i])) for i in range(H)]
    state = [0] * H  # 0 new, 1 on the stack, 2 done

    def visit(i: int, trail: list[int]) -> None:
        state[i] = 1
        for j in succ[i]:
            if state[j] == 1:
                cyc = trail[trail.index(j) :] + [j] if j in trail else [i, j]
                raise ConfigError(
                    path,
                    f"Hydrogenerators[{i}].downstream_turn",
                    "the cascade forms a cycle ("
                    + " -> ".join(str(ids[k]) for k in cyc)
                    + "); water must flow down an acyclic cascade",
                )
            if state[j] == 0:
                visit(j, trail + [j])
        state[i] = 2

    for i in range(H):
        if state[i] == 0:
            visit(i, [i])


def components(case: Case) -> list[list[int]]:
    """Connected components of the network (lists of bus indices)."""
    parent = list(range(case.N))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for f, t in zip(case.br_from, case.br_to):
        parent[find(int(f))] = find(int(t))
    groups: dict[int, list[int]] = {}
    for b in range(case.N):
        groups.setdefault(find(b), []).append(b)
    return list(groups.values())


def check_servable(case: Case, comps: list[list[int]], path: Path) -> None:
    """Without unserved load: every island's peak load (largest demand row) must fit its units' capacity
    (thermal pmax plus each plant's largest power); raise a ConfigError naming a load that cannot be served."""
    cap = np.zeros(case.N)
    np.add.at(cap, case.gen_bus, case.gen_pmax)
    hb = case.hydro_bus >= 0
    np.add.at(cap, case.hydro_bus[hb], case.hydro_capacity()[hb])
    loads = np.zeros(case.N)
    np.add.at(loads, case.load_bus, case.load_pd)
    if case.demand is not None:
        loads = np.maximum(loads, case.demand.max(0))
    for comp in comps:
        need, have = loads[comp].sum(), cap[comp].sum()
        if need > have + 1e-9:
            b = max(comp, key=lambda i: loads[i])
            raise ConfigError(
                path,
                "load",
                f"the load of bus {case.bus_ids[b]} (island of {len(comp)} bus(es), "
                f"demand {need:g} p.u.) exceeds the {have:g} p.u. its units can produce, and unserved "
                "load is not allowed (deficit = false); allowed: loads that the units can serve, or "
                "deficit = true",
            )
