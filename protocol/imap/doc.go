// Package imap is mailgate's IMAP server: IMAP4rev2 (RFC 9051) and IMAP4rev1
// (RFC 3501) with IDLE (RFC 2177), UIDPLUS (RFC 4315), MOVE (RFC 6851),
// UNSELECT (RFC 3691), NAMESPACE (RFC 2342), ENABLE (RFC 5161), SPECIAL-USE
// and CREATE-SPECIAL-USE (RFC 6154), LITERAL+ (RFC 7888), ESEARCH and
// SEARCHRES (RFC 4731, RFC 5182), CHILDREN (RFC 3348), LIST-EXTENDED and
// LIST-STATUS (RFC 5258, RFC 5819), BINARY (RFC 3516), APPENDLIMIT (RFC 7889),
// ID (RFC 2971) and STARTTLS, on github.com/emersion/go-imap/v2's imapserver, backed by
// package mailbox, so that what SMTP delivers and what the HTTP API or POP3
// change is the same mail.
//
// Each process keeps one shared state per selected mailbox: its UIDs as ranges
// (memory grows with the gaps between UIDs, not with the messages) and the
// modification sequence applied. A change from anywhere (any front end, any
// instance) arrives as a signal from mailbox.Service.Watch; the state then
// reads mailbox.Service.ChangesSince and hands every session the expunges,
// new messages and flag changes it has not been told, which the session
// reports as EXPUNGE, EXISTS and FETCH at its next command or while it IDLEs.
// Sequence numbers are computed per session from the shared ranges and the
// few expunges the session has not reported yet. No command reads message
// bodies except FETCH of body sections, which streams them.
//
// Every client line passes through cmdConn before the library reads it: it
// runs STARTTLS itself (the library never sees TLS begin), knows where each
// literal starts and ends, and keeps a literal's bytes from ever being parsed
// as commands, closing the connection where the library would refuse a
// LITERAL+ literal unread. It also completes the library's capability lists
// (STARTTLS, APPENDLIMIT=n, ID), answers ID, rewrites mailbox names the
// library would misread (mailboxes.go), and, on the way out, writes the FLAGS
// update a FETCH with a new keyword needs and corrects the FETCH items the
// library writes wrong (fetch.go). README's notes list each such seam.
//
// The package is a protocol adapter on package wire, which accepts the
// connections and owns their caps, login and idle timeouts, plaintext-login
// policy, graceful shutdown and metrics; the session tells it of each command,
// login and APPEND transfer, and answers its timeouts and shutdown with BYE.
package imap
