"""Stdout callback that prints one JSON object per line, for deployer's Ansible adapter to stream.

deployer runs ``ansible-playbook`` with ``ANSIBLE_STDOUT_CALLBACK=deployer_jsonl`` and parses each
line (``deployer.adapters.ansible.runner``). Events carry host, task and status only; a failure adds a
short message. Results of ``no_log`` tasks are never printed. Facts set by a task whose names end in
``_for_deployer`` are passed on (``facts``), which is how a role reports values (a node name) back.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: deployer_jsonl
    type: stdout
    short_description: JSON lines for deployer
    description:
      - One JSON object per event on stdout, read by deployer's Ansible adapter.
"""

MESSAGE_LIMIT = 600
EXPORTED_FACT_SUFFIX = "_for_deployer"


def _host_name(result: Any) -> str:
    host = getattr(result, "host", None) or result._host
    return str(host.get_name())


def _task(result: Any) -> Any:
    return getattr(result, "task", None) or result._task


def _payload(result: Any) -> dict[str, Any]:
    data = getattr(result, "result", None)
    return dict(data if data is not None else result._result)


def _short(text: Any) -> str:
    text = str(text).strip()
    return text if len(text) <= MESSAGE_LIMIT else "..." + text[-MESSAGE_LIMIT:]


def _failure_message(payload: dict[str, Any]) -> str:
    if payload.get("censored"):
        return "output hidden (no_log)"
    parts = [str(payload.get("msg") or "")]
    for key in ("stderr", "module_stderr", "stdout"):
        value = payload.get(key)
        if value and str(value).strip() not in parts[0]:
            parts.append(str(value))
            break
    return _short(" | ".join(p for p in parts if p)) or "failed"


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "deployer_jsonl"

    def __init__(self) -> None:
        super().__init__()
        self._play = ""

    def _emit(self, event: str, **fields: Any) -> None:
        record = {"event": event, "ts": round(time.time(), 3), **fields}
        sys.stdout.write(json.dumps(record, default=str) + "\n")
        sys.stdout.flush()

    def v2_playbook_on_play_start(self, play: Any) -> None:
        self._play = play.get_name().strip()
        self._emit("play", play=self._play)

    def v2_playbook_on_task_start(self, task: Any, is_conditional: Any) -> None:
        self._emit("task", play=self._play, task=task.get_name().strip(), handler=False)

    def v2_playbook_on_handler_task_start(self, task: Any) -> None:
        self._emit("task", play=self._play, task=task.get_name().strip(), handler=True)

    def _runner(self, result: Any, status: str, message: str | None = None) -> None:
        task = _task(result)
        payload = _payload(result)
        fields: dict[str, Any] = {
            "host": _host_name(result),
            "task": task.get_name().strip(),
            "status": status,
        }
        fields["action"] = getattr(task, "action", "")
        if message:
            fields["msg"] = message
        facts = payload.get("ansible_facts") or {}
        exported = {k: v for k, v in facts.items() if k.endswith(EXPORTED_FACT_SUFFIX)}
        if exported and not payload.get("censored"):
            fields["facts"] = exported
        self._emit("result", **fields)

    def v2_runner_on_ok(self, result: Any) -> None:
        self._runner(result, "changed" if _payload(result).get("changed") else "ok")

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        status = "ignored" if ignore_errors else "failed"
        self._runner(result, status, _failure_message(_payload(result)))

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._runner(result, "unreachable", _failure_message(_payload(result)))

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._runner(result, "skipped")

    def v2_playbook_on_no_hosts_remaining(self) -> None:
        self._emit("no_hosts_remaining", play=self._play)

    def v2_playbook_on_stats(self, stats: Any) -> None:
        hosts = {host: stats.summarize(host) for host in sorted(stats.processed)}
        self._emit("stats", hosts=hosts)
