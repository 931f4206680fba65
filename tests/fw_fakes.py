"""Stand-in MicroPython modules for the board tests on the unix port (it has no `network`).

FAKE_NETWORK: a WLAN that, like a real one, is not up when connect() returns: it associates
after a few isconnected() polls. So a board that dialled the hub before its WiFi was up shows it
(the unix port's own network works regardless), and the order the tests check is the board's.
"""

FAKE_NETWORK = """
STA_IF = 0
CONNECTS = []
POLLS_TO_ASSOCIATE = 5


class WLAN:
    def __init__(self, interface):
        self.up = False
        self.polls = -1

    def active(self, on=None):
        return True

    def isconnected(self):
        if self.polls > 0:
            self.polls -= 1
            if self.polls == 0:
                self.up = True
        return self.up

    def connect(self, ssid, password):
        CONNECTS.append(ssid)
        self.polls = POLLS_TO_ASSOCIATE

    def disconnect(self):
        self.up = False
        self.polls = -1

    def ifconfig(self):
        return ("10.0.0.2", "255.255.255.0", "10.0.0.1", "10.0.0.1")
"""
