"""cfripper filter for infra/check: WildcardResourceRule allows Resource "*" for exactly the
actions without resource-level permissions that the cfn-guard rules allow, read from
actions_without_resource_permissions in infra/rules/least-privilege.guard (one list for both
checkers). Nothing else is exempted."""

import os
import re

from cfripper.config.filter import Filter
from cfripper.model.enums import RuleMode

GUARD_RULES = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "least-privilege.guard")


def actions_without_resource_permissions():
    with open(GUARD_RULES, encoding="utf-8") as f:
        rules = f.read()
    found = re.search(r"let actions_without_resource_permissions = \[(.*?)\]", rules, re.DOTALL)
    if not found:
        raise RuntimeError(f"{GUARD_RULES} has no actions_without_resource_permissions list")
    actions = re.findall(r"'([^']+)'", re.sub(r"#.*", "", found.group(1)))
    if not actions:
        raise RuntimeError(f"actions_without_resource_permissions in {GUARD_RULES} is empty")
    return actions


FILTERS = [
    Filter(
        reason="actions without resource-level permissions (infra/rules/least-privilege.guard)",
        rule_mode=RuleMode.ALLOWED,
        eval={"in": [{"ref": "action"}, actions_without_resource_permissions()]},
        rules={"WildcardResourceRule"},
    ),
]
