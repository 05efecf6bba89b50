# SPDX-License-Identifier: MIT
"""packaging/completions/migratectl.bash: bash's completion function, run by a real bash with
bash-completion, completing verbs from the binary and migration and backup names from a real
daemon."""

import os
import subprocess

import harness
from harness import MIGRATECTL_BIN

SCRIPT = os.path.join(harness.SRC_ROOT, "packaging", "completions", "migratectl.bash")
BASH_COMPLETION = "/usr/share/bash-completion/bash_completion"

# Completes the words given as arguments (the last one being completed) and prints COMPREPLY.
DRIVER = r'''
source "$1"
source "$2"
shift 2
COMP_WORDS=("$@")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
COMP_LINE="${COMP_WORDS[*]}"
COMP_POINT=${#COMP_LINE}
_migratectl
printf '%s\n' "${COMPREPLY[@]}"
'''


class CompletionTest(harness.TestCase):

    def complete(self, *words):
        p = subprocess.run(["bash", "-c", DRIVER, "driver", BASH_COMPLETION, SCRIPT, MIGRATECTL_BIN]
                           + [str(w) for w in words], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        return sorted(w for w in p.stdout.split("\n") if w)

    def start(self):
        mig = harness.write_migrations(self.path("migrations"), {
            v: ("t%d" % v, "CREATE TABLE t%d (id INTEGER PRIMARY KEY);\n" % v, "DROP TABLE t%d;\n" % v)
            for v in (1, 2, 3)
        })
        return self.daemon(self.path("db.sqlite"), mig)

    def test_verbs_and_options_without_a_daemon(self):
        self.assertEqual(self.complete("re"), ["redo", "repair", "reset", "restore"])
        self.assertNotIn("__complete", self.complete(""))
        self.assertEqual(self.complete("ver"), ["verify", "version"])
        self.assertEqual(self.complete("up", "--re"), ["--rehearse"])
        self.assertEqual(self.complete("down", "--y"), ["--yes"])
        self.assertEqual(self.complete("status", "--so"), ["--socket"])  # shared options after the verb
        self.assertEqual(self.complete("status", "--color", ""), ["always", "auto", "never"])
        self.assertEqual(self.complete("help", "lo"), ["lock-check"])
        self.assertEqual(self.complete("mark", ""), ["applied", "rolled-back"])
        # no daemon on this socket: no names, no error on the terminal
        self.assertEqual(self.complete("--socket", self.path("none.sock"), "restore", ""), [])
        # the one-shot mode's options before the verb, and their arguments not taken for the verb
        self.assertEqual(self.complete("--da"), ["--database"])
        self.assertEqual(self.complete("--database", self.path("db.sqlite"), "--migrations", self.path("m"), "sta"),
                         ["status"])

    def test_names_from_the_live_daemon(self):
        d = self.start()
        self.assertCtl(d.ctl("up", "--to", 2), 0)
        self.assertEqual(self.complete("--socket", d.socket, "mark", "applied", ""), ["0001_t1", "0002_t2", "0003_t3"])
        self.assertEqual(self.complete("repair", "--socket", d.socket, "0003"), ["0003_t3"])
        self.assertCtl(d.ctl("backup"), 0)
        backups = [b["file"] for b in self.assertCtl(d.ctl("backups"), 0).json["backups"]]
        self.assertEqual(len(backups), 2, "one before up, one on demand")
        self.assertEqual(self.complete("restore", "--socket", d.socket, ""), sorted(backups))


if __name__ == "__main__":
    if not os.path.exists(BASH_COMPLETION):
        harness.cannot_run("%s is missing (apt-get install bash-completion)" % BASH_COMPLETION)
    harness.main()
