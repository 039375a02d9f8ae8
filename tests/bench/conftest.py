import pytest
from bench_helpers import write_sweep


@pytest.fixture(scope="session")
def swept(tmp_path_factory):
    """A store holding one small sweep: 2 lost-sales problems x (fixed base stock, DP, tiny HDPO) x 2 seeds."""
    from opsrl.bench.store import ResultsStore
    from opsrl.bench.sweep import load_sweep, run_sweep

    tmp = tmp_path_factory.mktemp("swept")
    mp = pytest.MonkeyPatch()
    mp.setenv("OPSRL_CACHE", str(tmp / "cache"))
    try:
        sweep = load_sweep(write_sweep(tmp))
        store = ResultsStore(tmp / "store.sqlite")
        messages = []
        result = run_sweep(
            sweep, store, progress=False, cell_progress=False, on_message=lambda cell, m: messages.append((cell.key, m))
        )
    finally:
        mp.undo()
    return store.path, sweep, result, messages
