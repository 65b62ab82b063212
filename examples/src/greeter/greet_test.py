import unittest

from greeter.greet import greet, greeting_message
from proto import greeting_pb2


class GreetTest(unittest.TestCase):
    def test_greet_names_the_recipient(self):
        self.assertEqual(greet("remex"), "hello, remex")

    def test_message_survives_the_wire(self):
        data = greeting_message("remex").SerializeToString()
        message = greeting_pb2.Greeting.FromString(data)
        self.assertEqual(message.recipient, "remex")
        self.assertEqual(message.text, "hello, remex")


if __name__ == "__main__":
    unittest.main()
