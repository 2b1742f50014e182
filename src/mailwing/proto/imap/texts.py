"""Every human-readable IMAP response text, in one place (the IMAP reply catalogue).

Why: the parser, the reader and the session never write response wording inline; tests
compare against these names. Texts are plain ASCII, short, and never echo client input
(except command names, which are atoms). ``{}`` placeholders are filled with ``str.format``.
Response *codes* (``[TRYCREATE]`` ...) are built in ``responses.py``; RFC 5530 explains
which code goes with which failure.
"""

from __future__ import annotations

# -- greeting, logout, generic completions (RFC 3501 sections 7.1, 6.1.3) ------------------
GREETING = "mailwing IMAP4rev1 ready"
GREETING_PREAUTH = "mailwing IMAP4rev1 logged in"
BYE_LOGOUT = "Logging out"
BYE_IDLE_TIMEOUT = "Autologout; idle for too long"
BYE_SHUTDOWN = "Server shutting down"
BYE_TOO_MANY_ERRORS = "Too many errors"
BYE_TOO_MANY_AUTH_FAILURES = "Too many authentication failures"
BYE_INTERNAL = "Internal server error"
COMPLETED = "{} completed"
NOT_ALLOWED = "{} not allowed now"
NOT_ALLOWED_STATE = "{} not allowed in the {} state"

# -- continuation (RFC 3501 section 7.5) ---------------------------------------------------
CONTINUE_LITERAL = "Ready for literal data"
CONTINUE_IDLE = "idling"
CONTINUE_AUTH = ""  # the SASL challenge itself follows "+ "

# -- authentication (RFC 3501 6.2, RFC 5530) -----------------------------------------------
AUTH_FAILED = "Authentication failed"
AUTH_CANCELLED = "Authentication cancelled"
AUTH_MECHANISM_UNSUPPORTED = "Unsupported authentication mechanism"
AUTH_DISABLED = "Account disabled"
AUTH_THROTTLED = "Too many failed logins, try again later"
AUTH_TEMPFAIL = "Authentication temporarily unavailable"
LOGIN_DISABLED = "Plaintext authentication is disabled until STARTTLS"
STARTTLS_BEGIN = "Begin TLS negotiation now"
STARTTLS_ACTIVE = "TLS is already active"
STARTTLS_UNAVAILABLE = "TLS is not available"
PRIVACY_REQUIRED = "Use STARTTLS first"

# -- mailbox operations --------------------------------------------------------------------
SELECT_OK = "Select completed"
NO_SUCH_MAILBOX = "Mailbox does not exist"
MAILBOX_EXISTS = "Mailbox already exists"
CANNOT_DELETE_INBOX = "INBOX cannot be deleted"
CANNOT = "Operation not permitted on this mailbox"
HAS_CHILDREN = "Mailbox has children"
READ_ONLY = "Mailbox is read-only"
TRYCREATE = "Target mailbox does not exist"
UNSEEN_FIRST = "First unseen message"
UIDVALIDITY = "UIDs valid"
UIDNEXT = "Predicted next UID"
PERMANENTFLAGS = "Flags permitted"
HIGHESTMODSEQ = "Highest modification sequence"
FLAGS_LIMITED = "Limited"
NO_SUCH_MESSAGE = "No matching messages"
EXPUNGE_ISSUED = "Some of the requested messages no longer exist"
STORAGE_UNAVAILABLE = "Storage temporarily unavailable"
OVER_QUOTA = "Mailbox is over quota"
ALERT_GENERIC = "{}"
IDLE_DONE_EXPECTED = "Expected DONE"
ENABLE_OK = "Enabled"
ID_OK = "ID completed"

# -- framing (reader.py) -------------------------------------------------------------------
LINE_TOO_LONG = "Command line too long"
LITERAL_TOO_BIG = "Literal too big"
MESSAGE_TOO_BIG = "Message too big"
LITERAL_ABSURD = "Literal far too big, closing connection"
NUL_IN_LINE = "NUL octets are not allowed"
EMPTY_LINE = "Empty command line"
INTERNAL_PARSE = "Could not parse command"

# -- grammar (grammar.py, parser.py, fetchitems.py, search.py) ------------------------------
BAD_TAG = "Missing or invalid tag"
UNKNOWN_COMMAND = "Unknown command"
EXPECTED = "Syntax error: expected {}"
EXPECTED_SP = "Syntax error: expected a space"
TRAILING = "Syntax error: unexpected characters at the end of the command"
EXPECTED_NUMBER = "Syntax error: expected a number"
EXPECTED_STRING = "Syntax error: expected a string"
EXPECTED_MAILBOX = "Syntax error: expected a mailbox name"
UNTERMINATED_QUOTED = "Syntax error: unterminated quoted string"
BAD_ESCAPE = "Syntax error: invalid escape in quoted string"
BAD_QUOTED_CHAR = "Syntax error: invalid character in quoted string"
BAD_LITERAL = "Syntax error: invalid literal"
NOT_UTF8 = "Syntax error: string is not valid UTF-8"
BAD_DATE = "Syntax error: invalid date"
BAD_DATE_TIME = "Syntax error: invalid date-time"
BAD_SECTION = "Syntax error: invalid body section"
BAD_FETCH_ITEM = "Syntax error: invalid FETCH item"
BAD_SEQUENCE_SET = "Syntax error: invalid sequence set"
BAD_SEARCH_KEY = "Syntax error: invalid SEARCH key"
SEARCH_TOO_DEEP = "SEARCH criteria nested too deeply"
BAD_CHARSET = "Unsupported charset"
BAD_MAILBOX_NAME = "Invalid mailbox name"
BAD_BASE64 = "Invalid base64 in initial response"
BAD_SELECT_PARAM = "Unsupported SELECT parameter"
BAD_CREATE_PARAM = "Unsupported CREATE parameter"
BAD_LIST_OPTION = "Unsupported LIST option"
BAD_STATUS_ITEM = "Invalid STATUS item"
APPEND_NEEDS_LITERAL = "APPEND message must be a literal"
BAD_STORE_ITEM = "Invalid STORE item"
BAD_FLAG = "Invalid system flag"
BAD_ID = "Invalid ID parameters"
BAD_MESSAGE_NUMBER = "Invalid message sequence number"
