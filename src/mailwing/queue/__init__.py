"""Outbound mail: the durable queue's delivery worker, MX routing, the SMTP client, DSNs.

:mod:`.routing` finds where a domain's mail goes (RFC 5321 section 5.1, RFC 7505),
:mod:`.client` speaks SMTP to it, :mod:`.worker` claims due messages from storage with a
lease, delivers them and settles the outcome, and :mod:`.bounce` writes the RFC 3464
delivery status notification when a recipient fails for good.
"""
