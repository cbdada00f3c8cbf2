"""The tables of the Benchmarks and Mutation pages (docs/results/), written from the files the
benches and the mutation run leave, so that no figure is typed by hand.

Each ``render_...`` turns one document into the Markdown between its markers; the targets are
the issue's, the same the benches print beside their figures. :mod:`nextclose.results_pages`
says which block of which page each one writes.
"""

from __future__ import annotations

from typing import Any

# The targets each bench prints its figures against.
TUTORIAL_TARGET = 3.0  # the tutorial replica over the tutorial's TF1 code, steps per second
FIT_TARGET = 1.5  # train_lstm over a plain compile/fit, windows per second
EVALUATE_TARGET_SECONDS = 30.0  # nextclose evaluate on 20 years of daily bars
BACKTEST_TARGET_SECONDS = 180.0  # nextclose backtest of the default data
PANEL_TARGET_RATIO = 1.0  # training windows per second, the panel over the single series
PANEL_TARGET_RSS_MIB = 2048.0  # nextclose train on the panel
TRADING_DAYS_A_YEAR = 250  # how bench/evaluate_scaling.py counts 5,000 days as 20 years
ALL_CORES = 0.9  # the share of the usable cores that counts as "all of them", a process's CPU time being noisy


def _met(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def _machine(machine: dict[str, Any], load_average: str) -> str:
    return (f"{machine['cpu']} with {machine['cores']} cores ({load_average}), "
            + ", ".join(f"{name} {machine[key]}" for name, key in
                        (("TensorFlow", "tensorflow"), ("Keras", "keras"), ("Python", "python")) if machine.get(key)))


def render_training_speed(results: dict[str, Any]) -> str:
    """``bench/results.json`` (``python bench/run.py``): the tutorial replica against the tutorial's
    TF1 code, ``train_lstm`` against a plain ``fit``, and the peak memory of ``nextclose train``."""
    tutorial, lstm, rss = results["tutorial_vs_tf1"], results["lstm_vs_fit"], results["train_peak_rss"]
    load = (f"load average {results['load_average_before'][0]:.1f} before, "
            f"{results['load_average_after'][0]:.1f} after")
    return "\n".join([
        f"`bench/results.json`: {_machine(results['machine'], load)}; medians of {results['rounds']} interleaved "
        f"rounds, compile time excluded; `python bench/run.py` took {results['total_seconds'] / 60:.1f} min.",
        "",
        "| what | figure | ratio |",
        "| --- | --- | --- |",
        f"| the tutorial's TF1 code (`tf.compat.v1`, `TF_USE_LEGACY_KERAS=1`, its own process), the last "
        f"{tutorial['input']['pairs']} days of the tutorial's input "
        f"| {tutorial['tf1_steps_per_second']:,.1f} steps/s | |",
        f"| the tutorial replica on the same input (`train.steps_per_call` "
        f"{tutorial['replica_config']['steps_per_call']}) | {tutorial['replica_steps_per_second']:,.1f} steps/s "
        f"| {tutorial['ratio']:.1f}x (target {TUTORIAL_TARGET:g}x: {_met(tutorial['ratio'] >= TUTORIAL_TARGET)}) |",
        f"| plain `model.compile(); model.fit()` of the default model, batch {lstm['batch_size']} "
        f"| {lstm['fit_windows_per_second']:,.0f} windows/s | |",
        f"| `nextclose.training.train_lstm`, same model and batch | {lstm['ours_windows_per_second']:,.0f} windows/s "
        f"| {lstm['ratio']:.1f}x (target {FIT_TARGET:g}x: {_met(lstm['ratio'] >= FIT_TARGET)}) |",
        f"| peak RSS of {rss['command']}, median of {len(rss['runs'])} runs | {rss['peak_rss_mib']:,.0f} MiB "
        f"| a process that only imports TensorFlow, Keras, MLflow and nextclose: "
        f"{rss['imports_only_peak_rss_mib']:,.0f} MiB |",
    ])


def render_members(results: dict[str, Any]) -> str:
    """``bench/members.json`` (``python bench/run.py --only members``): ``train.seeds`` members
    trained in one graph against one member, and against one-member runs in a row."""
    members = results["members"]
    count = members["runs"]["eight"][0]["members"]
    rates, tutorial = members["steady_state_steps_per_second"], members["tutorial_steps_per_second"]
    load = f"load average {results['load_average_before'][0]:.1f}"
    return "\n".join([
        f"`bench/members.json`: {_machine(results['machine'], load)}; medians of {results['rounds']} interleaved "
        f"rounds, {members['steps']} steps of the default model ({members['model']['hidden_units']} units, batch "
        f"{members['batch_size']}), wall time of `train_lstm` including tracing and compiling.",
        "",
        "| what | figure | ratio |",
        "| --- | --- | --- |",
        f"| 1 member | {members['one_member_seconds']:.1f} s | |",
        f"| {count} members in one graph | {members['eight_members_seconds']:.1f} s | {members['eight_vs_one']:.2f}x "
        f"the time of 1 member (target {members['target_eight_vs_one']:g}x: "
        f"{_met(members['eight_vs_one'] <= members['target_eight_vs_one'])}) |",
        f"| {count} one-member runs in a row | {members['eight_sequential_seconds']:.1f} s | {count}-in-one "
        f"{members['sequential_vs_eight']:.2f}x faster (target {members['target_sequential_vs_eight']:g}x: "
        f"{_met(members['sequential_vs_eight'] >= members['target_sequential_vs_eight'])}) |",
        f"| after compiling, steps per second: 1 member / {count} members | {rates['one']:.0f} / {rates['eight']:.0f} "
        f"| {members['steady_state_eight_vs_one']:.2f}x the time per step |",
        f"| the tutorial's network: 1 member / {count} members | {tutorial['one']:.0f} / {tutorial['eight']:.0f} "
        f"steps/s | {tutorial['one'] / tutorial['eight']:.2f}x the time per step |",
    ])


def _slashed(values: list[float], spec: str) -> str:
    return " / ".join(format(value, spec) for value in values)


def render_evaluate_scaling(results: dict[str, Any]) -> str:
    """``bench/evaluate_scaling.json`` (``python bench/evaluate_scaling.py``): ``nextclose
    evaluate`` on longer and longer histories, the ARIMA baseline alone, new and old, and the
    backtest of the default data."""
    rows, backtest = results["evaluate"], results["backtest"]
    first, last = rows[0], rows[-1]
    old = [row for row in rows if "arima_old_seconds" in row]
    years = last["days"] / TRADING_DAYS_A_YEAR
    lines = [
        f"`bench/evaluate_scaling.json`: {results['when']}, {results['machine_cpus']} cores.",
        "",
        "| what | figure | |",
        "| --- | --- | --- |",
        f"| evaluate, {_slashed([row['days'] for row in rows], ',')} days "
        f"({_slashed([row['test_days'] for row in rows], ',')} test days) "
        f"| {_slashed([row['evaluate_seconds'] for row in rows], '.1f')} s "
        f"| {last['days'] / first['days']:.0f}x the days, {last['evaluate_seconds'] / first['evaluate_seconds']:.2f}x "
        f"the time; {years:.0f} years in {last['evaluate_seconds']:.1f} s (target {EVALUATE_TARGET_SECONDS:g} s: "
        f"{_met(last['evaluate_seconds'] <= EVALUATE_TARGET_SECONDS)}) |",
        f"| ARIMA baseline alone, new (order chosen once, one fixed-parameter filter pass), same sizes "
        f"| {_slashed([row['arima_new_seconds'] for row in rows], '.1f')} s | |",
    ]
    if len(old) >= 2:
        lines.append(
            f"| ARIMA baseline alone, old (pmdarima `update` after every day), "
            f"{_slashed([row['days'] for row in old], ',')} days "
            f"| {_slashed([row['arima_old_seconds'] for row in old], '.1f')} s "
            f"| {old[-1]['days'] / old[0]['days']:.0f}x the days, "
            f"{old[-1]['arima_old_seconds'] / old[0]['arima_old_seconds']:.1f}x the time |")
    lines.append(
        f"| backtest of the default data, {backtest['folds']} folds x {backtest['members']} members, "
        f"{backtest['days']} days | {backtest['seconds']:.1f} s | target {BACKTEST_TARGET_SECONDS:g} s: "
        f"{_met(backtest['seconds'] <= BACKTEST_TARGET_SECONDS)} |")
    return "\n".join(lines)


def render_panel_training(results: dict[str, Any]) -> str:
    """``bench/panel.json`` (``python bench/panel.py``): training on the 20-stock panel against the
    single series, and ``nextclose train`` on the panel."""
    panel, medians, machine = results["panel"], results["medians"], results["machine"]
    rounds = len(results["rounds"]["panel"])
    ratio = results["windows_per_second_ratio"]
    load = f"load average {results['load_average'][0]:.1f}"
    cores = machine["usable_cores"]

    def speed(side: str) -> str:
        return f"{medians[side]['windows_per_second']:,.0f} windows/s on {medians[side]['cores_used']:.2f} cores"

    return "\n".join([
        f"`bench/panel.json`: {_machine(machine, load)}; the panel of {panel['symbols']} stocks from "
        f"{panel['first_date']} to {panel['last_date']} ({panel['rows']:,} rows, {panel['train_samples']:,} training "
        f"windows) against the single series ({results['single_train_samples']:,}), "
        f"{'median of ' + str(rounds) + ' interleaved rounds' if rounds > 1 else 'one round'}.",
        "",
        "| what | figure | ratio |",
        "| --- | --- | --- |",
        f"| `nextclose prepare` of the panel | {results['prepare_seconds']:.1f} s | |",
        f"| training, the single series | {speed('single')} | |",
        f"| training, the panel | {speed('panel')} | {ratio:.2f}x the single series' (target {PANEL_TARGET_RATIO:g}x: "
        f"{_met(ratio >= PANEL_TARGET_RATIO)}); target all {cores} cores: "
        f"{_met(medians['panel']['cores_used'] >= cores * ALL_CORES)} |",
        f"| `nextclose train` on the panel | peak RSS {results['train_peak_rss_mib']:,.0f} MiB, "
        f"{results['train_wall_seconds']:.0f} s | target {PANEL_TARGET_RSS_MIB / 1024:g} GiB: "
        f"{_met(results['train_peak_rss_mib'] <= PANEL_TARGET_RSS_MIB)} |",
    ])


def _share(killed: int, checked: int) -> str:
    return f"{killed} of {checked} ({100.0 * killed / checked:.1f}%)" if checked else "none checked"


def _mutation_row(name: str, outcomes: dict[str, int], equivalent: int, date: str) -> str:
    unchecked = outcomes.get("not checked", 0)
    checked, killed = sum(outcomes.values()) - unchecked, outcomes.get("killed", 0)
    return (f"| {name} | {_share(killed, checked)}{f'; {unchecked} not checked' if unchecked else ''} "
            f"| {_share(killed, checked - equivalent)} | {date} |")


def render_mutation(document: dict[str, Any]) -> str:
    """``bench/results/mutation.json`` (``python scripts/mutation_score.py --write``): per module,
    the share of the mutants checked that the tests killed, raw and without the survivors listed
    as equivalent in mutation-equivalents.md, and all modules together."""
    modules = document["modules"]
    outcomes: dict[str, int] = {}
    for counts in modules.values():
        for outcome, count in counts["outcomes"].items():
            outcomes[outcome] = outcomes.get(outcome, 0) + count
    return "\n".join([
        f"`bench/results/mutation.json`: mutmut's results under `mutants/`, read by `scripts/mutation_score.py` "
        f"at commit `{document['commit'][:7]}` on {document['date']}.",
        "",
        "| module | killed | without listed equivalents | results last written |",
        "| --- | --- | --- | --- |",
        *(_mutation_row(f"`{module}`", counts["outcomes"], counts["equivalent"], counts["date"])
          for module, counts in modules.items()),
        _mutation_row(f"all {len(modules)} modules", outcomes,
                      sum(counts["equivalent"] for counts in modules.values()), ""),
    ])
