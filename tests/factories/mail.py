"""Hostile messages: structure that costs a MIME parser much more than its size suggests."""

from __future__ import annotations

HEAD = (
    b"From: Ann <ann@example.com>\r\nTo: worker@kennel.test\r\nSubject: parts\r\n"
    b"MIME-Version: 1.0\r\n"
)


def many_parts(
    parts: int, *, sender: str = "ann@example.com", to: str = "worker@kennel.test"
) -> bytes:
    """A multipart/mixed message of `parts` one-byte attachments, all named alike."""
    head = HEAD.replace(b"ann@example.com", sender.encode()).replace(
        b"worker@kennel.test", to.encode()
    )
    one = b"--B\r\nContent-Type: a/b\r\n\r\nx\r\n"  # an attachment: not a text part
    return (
        head
        + b"Content-Type: multipart/mixed; boundary=B\r\n\r\nhello\r\n"
        + one * parts
        + b"--B--\r\n"
    )


def nested(depth: int) -> bytes:
    """A text part inside `depth` multipart containers, each inside the next."""
    body = b"Content-Type: text/plain\r\n\r\nhi\r\n"
    for level in range(depth):
        body = (
            b'Content-Type: multipart/mixed; boundary="L%d"\r\n\r\n--L%d\r\n' % (level, level)
            + body
            + b"--L%d--\r\n" % level
        )
    return HEAD + body
