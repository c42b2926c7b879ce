"""deploy/windows/xtqueue-executor.task.xml is what `schtasks /Create /XML` reads (deploy/windows/README.md): it must
be well-formed XML whose bytes are in the encoding its declaration names (issue #10, defect 11c: it declared UTF-16
but was ASCII, and an XML parser refused it)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

WINDOWS = Path(__file__).resolve().parents[2] / "deploy" / "windows"
TASK = WINDOWS / "xtqueue-executor.task.xml"
NS = {"t": "http://schemas.microsoft.com/windows/2004/02/mit/task"}


def test_task_xml_parses_in_its_declared_encoding():
    raw = TASK.read_bytes()
    root = ET.fromstring(raw)  # the parser reads the declaration (and a BOM) itself, as Task Scheduler does
    assert root.tag == "{%s}Task" % NS["t"]
    head = raw.decode("utf-16") if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else raw.decode("utf-8")
    declared = re.match(r'<\?xml[^>]*encoding="([^"]+)"', head.lstrip("\ufeff"))
    assert declared is not None, "the task file declares its encoding"
    assert raw.decode(declared.group(1)).lstrip("\ufeff").startswith("<?xml")  # the bytes are what it says


def test_task_runs_the_restarting_wrapper_once_at_log_on():
    root = ET.fromstring(TASK.read_bytes())
    command = root.findtext("t:Actions/t:Exec/t:Command", namespaces=NS)
    assert command is not None and command.endswith("run-executor.cmd")
    assert (WINDOWS / "run-executor.cmd").is_file()
    assert root.find("t:Triggers/t:LogonTrigger", NS) is not None
    assert root.findtext("t:Settings/t:MultipleInstancesPolicy", namespaces=NS) == "IgnoreNew"
