"""The flow-run process our agents start: prefect's `execute flow-run`, behind an ownership check.

It runs prefect's own `prefect execute flow-run` command with `agents.submission.OwnedFlowRunner` as the flow
runner, which confirms, right before and right after it moves the run to Running, that the run still belongs
to the submission its agent handed over, and gives the run up otherwise (agents.submission explains the
protocol).
"""
from __future__ import annotations

import signal

import prefect

from agents.submission import OwnedFlowRunner

RUNNER_CLASS = f"{OwnedFlowRunner.__module__}.{OwnedFlowRunner.__qualname__}"


def main() -> None:
    """Runs prefect's `execute flow-run` command with OwnedFlowRunner as the flow runner."""
    from prefect.cli.execute import flow_run

    interruptible()
    # prefect resolves the runner class by name among modules already imported: agents.submission is
    prefect.config.engine.flow_runner.default_class = RUNNER_CLASS
    flow_run.main(args=[], prog_name="python -m agents.flowrun")


def interruptible() -> None:
    """Makes SIGINT raise KeyboardInterrupt in this process, whatever it inherited.

    prefect's cancellation (CloudFlowRunner.check_for_cancellation) interrupts the running task by sending the
    main thread SIGINT. A process started with SIGINT ignored (an agent run as a background job of a script,
    as `cmd &` does in a non-interactive shell, or under a CI runner) hands SIG_IGN down to its flow runs, and
    Python installs its KeyboardInterrupt handler only where SIGINT is at its default: a cancelled run would go
    on until its running task ended by itself.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)
