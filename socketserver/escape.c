/*
 * escape.c - peer- and user-supplied text made safe for a log line: a
 * client's socket path, an address the user typed, a line a handler
 * quotes in its error.  Control characters, DEL and bytes >= 0x80 are
 * written as C escapes ("\n", "\x1b"), so such text can neither end the
 * line nor drive the terminal it is shown on.
 */
#include "ss_internal.h"

#include <string.h>

/*
 * The one escaping loop.  Writes src[0..srclen) to dst as printable ASCII:
 * printable characters as they are, '\\' as "\\\\" when double_backslash
 * (else as it is), '\n', '\r', '\t' as "\\n", "\\r", "\\t", any other byte
 * as "\\xHH".  An escape that does not fit whole is not written, nor is
 * anything after it, so a truncated result never ends in half an escape.
 * dst is NUL-terminated when dstlen > 0.  Returns the length of the whole
 * escaped text, as snprintf does (>= dstlen: dst holds a prefix).
 */
static size_t escape(char *dst, size_t dstlen, const char *src, size_t srclen,
		     bool double_backslash)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)src;
	size_t i, k, need = 0, used = 0;
	bool full = dstlen == 0;
	char e[4];

	for (i = 0; i < srclen; i++) {
		e[0] = '\\';
		k = 2;
		switch (s[i]) {
		case '\\':
			e[1] = '\\';
			k = double_backslash ? 2 : 1;
			break;
		case '\n':
			e[1] = 'n';
			break;
		case '\r':
			e[1] = 'r';
			break;
		case '\t':
			e[1] = 't';
			break;
		default:
			if (s[i] >= 0x20 && s[i] < 0x7f) {
				e[0] = (char)s[i];
				k = 1;
			} else {
				e[1] = 'x';
				e[2] = hex[s[i] >> 4];
				e[3] = hex[s[i] & 15];
				k = 4;
			}
		}
		need += k;
		if (!full && used + k < dstlen) {
			memcpy(dst + used, e, k);
			used += k;
		} else {
			full = true;
		}
	}
	if (dstlen)
		dst[used] = '\0';
	return need;
}

size_t ss_escape(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	return escape(dst, dstlen, src, srclen, true);
}

size_t ss_escape_message(char *dst, size_t dstlen, const char *msg)
{
	return escape(dst, dstlen, msg, strlen(msg), false);
}

const char *ss__escape_str(char *buf, size_t len, const char *s)
{
	if (!s)
		s = "(null)";
	ss_escape(buf, len, s, strlen(s));
	return buf;
}
