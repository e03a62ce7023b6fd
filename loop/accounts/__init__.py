"""People, roles and keys (issue 18): who a request is and what it may do.

``capabilities`` is pure (no Django models): the role and scope rules have their one home there.
"""
