"""Commands from stdin: a small line editor on a terminal (cbreak, our own echo, history), else lines."""

import codecs
import os

CTRL_RBRACKET = "\x1d"  # Ctrl-]: leave, as in telnet, miniterm and mpremote


class LineInput:
    """Commands from stdin: a small line editor on a terminal (cbreak, our own echo), else lines."""

    def __init__(self, fd, write, prompt):
        self.fd = fd
        self.write = write
        self.prompt = prompt
        self.tty = os.isatty(fd)
        self.saved = None
        self.buf = ""
        self.history = []
        self.hpos = None
        self.esc = ""
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.partial = ""
        self.eof = False

    def __enter__(self):
        if self.tty:
            import termios

            self.saved = termios.tcgetattr(self.fd)
            self.cbreak()
            self.redraw()
        return self

    def cbreak(self):
        import termios

        attrs = termios.tcgetattr(self.fd)
        attrs[3] &= ~(termios.ICANON | termios.ECHO | termios.IEXTEN)  # ISIG stays: Ctrl-C still interrupts
        attrs[6][termios.VMIN] = 1
        attrs[6][termios.VTIME] = 0
        termios.tcsetattr(self.fd, termios.TCSANOW, attrs)

    def restore(self):
        if self.saved is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
            self.saved = None

    def __exit__(self, *exc):
        if self.tty:
            self.write("\r\x1b[K")
        self.restore()

    def print(self, text):
        if self.tty:
            self.write("\r\x1b[K" + text + "\n" + self.prompt + self.buf)
        else:
            self.write(text + "\n")

    def redraw(self):
        if self.tty:
            self.write("\r\x1b[K" + self.prompt + self.buf)

    def read(self):
        """What is waiting on stdin: a list of complete lines; None means leave now."""
        try:
            data = os.read(self.fd, 4096)
        except OSError:
            data = b""
        if not data:
            self.eof = True
            return []
        text = self.decoder.decode(data)
        if not self.tty:
            if CTRL_RBRACKET in text:
                return None
            self.partial += text
            lines = self.partial.split("\n")
            self.partial = lines.pop()
            return [ln.rstrip("\r") for ln in lines]
        lines = []
        for ch in text:
            if self.esc:
                self.esc += ch
                if len(self.esc) >= 3 and (0x40 <= ord(ch) <= 0x7E):
                    self._escape(self.esc)
                    self.esc = ""
                elif len(self.esc) == 2 and ch not in "[O":
                    self.esc = ""
                continue
            if ch == CTRL_RBRACKET or ch == "\x03":  # Ctrl-C arrives as a key when this is not our controlling tty
                return None
            if ch == "\x04" and not self.buf:
                return None
            if ch in "\r\n":
                line = self.buf
                self.buf = ""
                self.hpos = None
                self.write("\r\x1b[K" + self.prompt + line + "\n")
                if line.strip() and (not self.history or self.history[-1] != line):
                    self.history.append(line)
                lines.append(line)
            elif ch in "\x7f\x08":
                self.buf = self.buf[:-1]
            elif ch == "\x15":  # Ctrl-U
                self.buf = ""
            elif ch == "\x1b":
                self.esc = ch
            elif ch >= " ":
                self.buf += ch
        self.redraw()
        return lines

    def _escape(self, seq):
        if seq[-1] not in "AB" or not self.history:
            return
        if seq[-1] == "A":
            self.hpos = len(self.history) - 1 if self.hpos is None else max(0, self.hpos - 1)
        elif self.hpos is not None:
            self.hpos += 1
            if self.hpos >= len(self.history):
                self.hpos = None
                self.buf = ""
                return
        if self.hpos is not None:
            self.buf = self.history[self.hpos]
