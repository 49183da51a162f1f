"""A module of an installed app that raises while it is imported; no task is ever found here."""

raise RuntimeError("tests.reliability.explodes_on_import cannot be imported")
