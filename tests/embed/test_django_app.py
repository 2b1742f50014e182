"""An application's mail, as a developer tests it: Django's ``send_mail`` over SMTP to a
capture-mode server, read back over IMAP (the README's example)."""

from __future__ import annotations

import imaplib

from mailwing import MailServer


def test_django_send_mail_is_captured_and_readable_over_imap() -> None:
    from django.conf import settings

    with MailServer(capture=True) as server:
        if not settings.configured:
            settings.configure(EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend")
        settings.EMAIL_HOST = server.host
        settings.EMAIL_PORT = server.ports["submission"]
        settings.EMAIL_HOST_USER = "myapp"  # capture mode takes any credentials
        settings.EMAIL_HOST_PASSWORD = "anything"
        from django.core.mail import send_mail

        sent = send_mail("Your order", "Order 42 has shipped.", "shop@myapp.test",
                         ["customer@gmail.com", "audit@myapp.test"])
        assert sent == 1

        imap = imaplib.IMAP4(server.host, server.ports["imap"])
        imap.login(server.settings.capture.address, server.settings.capture.password)
        assert imap.select("INBOX") == ("OK", [b"1"])
        _, data = imap.fetch("1", "(BODY.PEEK[])")
        imap.logout()
        raw = bytes(data[0][1])
        assert b"Subject: Your order" in raw and b"Order 42 has shipped." in raw
        [msg] = server.captured()
        assert msg.to == "customer@gmail.com, audit@myapp.test"
