"""Legetime core: the domain, its rules, the plugin contract, jobs, configuration and data.

core never imports ``plugins`` or ``schema``; plugins are loaded by name through pluggy.
"""

__version__ = "0.1.0"
