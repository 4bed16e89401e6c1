"""Governance (docs/governance.md): retention, enforced permissions, secrets and the audit trail.

Modules, lowest first: :mod:`.catalog` (datasets and their sensitivity),
:mod:`.store` (the governance tables), :mod:`.audit`, :mod:`.permissions`
(grants, roles, defaults), :mod:`.sqlguard` (the statement check),
:mod:`.access` (checked, locked-down, audited reads), :mod:`.retention` /
:mod:`.gold_retention` / :mod:`.retention_run` (plan and delete),
:mod:`.modes` (folder modes), :mod:`.secrets`, :mod:`.tokens`, and
:mod:`.service` (what the facade calls); :mod:`.names` holds the constants
the CLI needs without heavy imports. See docs/governance.md.
"""
