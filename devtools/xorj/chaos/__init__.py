"""The chaos suite's probes and actions (called by Chaos Toolkit experiments in experiments/ through
``provider: {type: python, module: xorj.chaos.probes | xorj.chaos.actions, func: ...}``), the local
chaos environment they run against, and the report built from their journals.

Where the experiments find the system: :mod:`xorj.chaos.target` (experiment ``configuration``, fed
from environment variables, or the state file of ``xorj chaos env up`` / ``xorj dev up``).
"""
