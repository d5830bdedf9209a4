// Package smtp is mailgate's SMTP server, an adapter from
// github.com/emersion/go-smtp to the delivery pipeline (package delivery) and
// the credential check (package auth). It implements:
//
//   - RFC 5321 (SMTP) with the trace header of §4.4 and the relay rules of §3.6;
//   - RFC 6409 (message submission: AUTH before MAIL) and RFC 8314 (implicit TLS);
//   - RFC 3207 STARTTLS, RFC 4954 AUTH with PLAIN (RFC 4616) and LOGIN
//     (draft-murchison-sasl-login), RFC 3848 "with" protocol types;
//   - RFC 2920 PIPELINING, RFC 6152 8BITMIME, RFC 6531 SMTPUTF8, RFC 2034
//     ENHANCEDSTATUSCODES with the codes of RFC 3463, RFC 1870 SIZE, RFC 3030
//     CHUNKING (advertised by go-smtp; BDAT streams into the same Data path).
//
// One Server type serves the three ports, chosen by Options.Mode:
//
//   - ModeMTA (port 25): mail from other servers. AUTH is optional; without it
//     only local recipients are accepted (554 5.7.1 for any other domain).
//   - ModeSubmission (port 587): STARTTLS, AUTH required before MAIL (530 5.7.0).
//   - ModeSubmissions (port 465): like ModeSubmission over implicit TLS. Serve
//     wraps the plain TCP listener in TLS itself (Options.TLSConfig is required);
//     callers pass the same kind of listener in every mode, because the
//     connection layer (package wire: caps, deadlines, accounting) sits below TLS.
//
// Connections come from package wire, the layer SMTP shares with IMAP and
// POP3: its caps are answered 421 4.7.0, its login timeout applies to the
// submission modes, and its plaintext-login rule decides where AUTH is offered
// (over TLS, to peers on this host, or everywhere with Policy.AllowInsecureAuth).
// The third failed AUTH of a connection is answered 421 4.7.0 and the
// connection closed. Between the connection and go-smtp sits cmdConn, which
// reads every command line first: it runs STARTTLS itself (so that it stays
// above TLS, and so that nothing said before TLS survives it), answers
// commands go-smtp does not know 500 5.5.2, and lets MAIL's AUTH= parameter
// carry the address in angle brackets (curl --mail-auth).
// An authenticated sender may use only its own address, or that of a group it
// belongs to, as MAIL FROM and in the From: header (553 5.7.1 otherwise). A
// From: field that names no address at all (a bare display name, as Python's
// email.header.Header produces) claims nobody and is accepted; one that cannot
// be parsed but contains "@" is refused, since it cannot be checked.
//
// Line endings: go-smtp ends DATA only at CRLF.CRLF, so "\n.\n" or "\r\n.\n"
// inside a message never end it and no second message can be smuggled in. Bare
// LF and bare CR in the body are normalized to CRLF by message.Spool rather than
// refused (Postfix's smtpd_forbid_bare_newline would refuse them): refusing
// loses mail from old but harmless software, and normalizing gives IMAP and POP3
// the CRLF they need while leaving no ambiguous line end in what is stored.
//
// Timeouts: go-smtp's own ReadTimeout is one deadline for a whole DATA body, so
// it is not used. The idle timeout of package wire counts from the last
// command and, during a message transfer, from the last bytes received: an
// idle client is dropped, a slow but steady sender of a large message is not.
//
// The reply to DATA is 250 only after delivery.Deliver has committed the
// message for every accepted recipient; any failure before that is a temporary
// 4xx, so the client keeps the message and retries.
package smtp
