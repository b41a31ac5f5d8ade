"""A person's rights over her data: export, erasure, withdrawing consent, rectification, restriction of
processing and what a guardian may see."""
