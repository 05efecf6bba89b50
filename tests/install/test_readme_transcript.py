# SPDX-License-Identifier: MIT
"""README.md's first screen shows a real session: tests/readme-transcript.sh runs it (a real
daemon, migratectl's status, up with its progress, a failing migration's message) and this test
checks that the README's transcript is still what the script prints, up to times, durations and
job ids. When the client's output changes on purpose: tests/readme-transcript.sh --update."""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402

SCRIPT = os.path.join(harness.SRC_ROOT, "tests", "readme-transcript.sh")
BEGIN = "<!-- transcript: tests/readme-transcript.sh -->\n```console\n"
END = "```\n<!-- /transcript -->"


def normalise(text):
    """Times, durations and job ids vary from run to run; nothing else may."""
    text = re.sub(r"\d{8}T\d{6}\.\d{3}Z", "<time>", text)
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", "<time>", text)
    text = re.sub(r"\b\d+ ms\b", "<n> ms", text)
    text = re.sub(r"\bjob ?\d+", "job<n>", text)
    return text


class ReadmeTranscriptTest(harness.TestCase):

    def test_readme_shows_what_the_script_prints(self):
        r = subprocess.run([SCRIPT], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=harness.CTL_TIMEOUT * 2)
        self.assertEqual(r.returncode, 0, r.stderr)
        printed = r.stdout
        # what the first screen promises a reader: a status, an up with progress, a failure
        for what in ("$ migratectl status\n", "Pending (3):", "$ migratectl up\n", "[2/3] applied 0002",
                     "0003_add_alarms.up.sql:3: no such column: device; the database is unchanged",
                     "$ echo $?\n1\n"):
            self.assertIn(what, printed)
        with open(os.path.join(harness.SRC_ROOT, "README.md")) as f:
            readme = f.read()
        self.assertIn(BEGIN, readme)
        shown = readme.split(BEGIN, 1)[1].split(END, 1)[0]
        self.assertEqual(normalise(shown), normalise(printed),
                         "README.md's transcript is not what tests/readme-transcript.sh prints "
                         "(run it with --update if the change is intended)")
        # on the first screen: before the second section
        self.assertLess(readme.index(BEGIN), readme.index("\n## ", readme.index("## Quickstart") + 1))


if __name__ == "__main__":
    harness.main()
