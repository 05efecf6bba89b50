# SPDX-License-Identifier: MIT
"""migratectl alone (no daemon): help, "did you mean", shared options and exclusive ones, what a
person reading the terminal sees and the exit code a script gets."""

import re

import harness
from harness import ctl

VERBS = ["status", "version", "up", "down", "redo", "plan", "history", "verify", "wait", "cancel", "backup",
         "backups", "restore", "lock-check", "mark", "baseline", "repair", "seed", "reset", "new", "help"]

# Each verb's own options, every one of which its help page must explain.
OPTIONS = {
    "status": ["--check"],
    "up": ["--to", "--dry-run", "--rehearse", "--per-migration", "--allow-out-of-order", "--seed"],
    "reset": ["--yes"],
    "down": ["--steps", "--to", "--dry-run", "--yes"],
    "redo": ["--yes"],
    "plan": ["--to", "--steps"],
    "history": ["--limit"],
    "wait": ["--timeout", "--strict"],
    "restore": ["--yes"],
    "lock-check": ["--database"],
    "new": ["--migrations"],
}
SHARED = ["--json", "--socket", "--instance", "--color", "--help"]


class CliHelpTest(harness.TestCase):

    def test_overview_fits_80_columns_and_lists_every_verb(self):
        for args in (["--help"], ["help"], ["-h"]):
            with self.subTest(args=args):
                r = self.assertCtl(ctl(*args), 0)
                for line in r.out.splitlines():
                    self.assertLessEqual(len(line), 80, "too wide: %r" % line)
                listed = re.findall(r"^  ([a-z-]+)  ", r.out, re.M)
                self.assertEqual([v for v in listed if v in VERBS], VERBS)
                self.assertIn("migratectl help COMMAND", r.out)

    def test_every_verb_has_a_page_with_its_options_and_an_example(self):
        for v in VERBS:
            with self.subTest(verb=v):
                page = self.assertCtl(ctl("help", v), 0).out
                self.assertEqual(self.assertCtl(ctl(v, "--help"), 0).out, page)
                self.assertTrue(page.startswith("Usage: migratectl %s" % v), page)
                self.assertRegex(page, r"\nExample:\n  \S", page)
                for option in OPTIONS.get(v, []) + SHARED:
                    self.assertRegex(page, r"\n  (-h, )?%s\b.*\S" % re.escape(option),
                                     "%s --help does not explain %s" % (v, option))
                for line in page.splitlines():
                    self.assertLessEqual(len(line), 80, "too wide: %r" % line)

    def test_did_you_mean(self):
        for args, suggestion in ((["stauts"], "'status'"), (["donw"], "'down'"), (["help", "stauts"], "'status'"),
                                 (["up", "--rehersae"], "'--rehearse'"), (["up", "--dry-rn"], "'--dry-run'"),
                                 (["history", "--limt", "3"], "'--limit'")):
            with self.subTest(args=args):
                r = self.assertCtl(ctl(*args), 2)
                self.assertIn("did you mean %s?" % suggestion, r.err)
        r = self.assertCtl(ctl("frobnicate"), 2)
        self.assertIn("unknown command 'frobnicate'", r.err)
        self.assertNotIn("did you mean", r.err)

    def test_version_option_is_the_programs(self):
        r = self.assertCtl(ctl("--version"), 0)
        self.assertRegex(r.out, r"^migratectl \d+\.\d+")

    def test_exclusive_options_exit_2(self):
        for args in (["up", "--dry-run", "--rehearse"], ["--socket", "/x.sock", "--instance", "y", "status"],
                     ["status", "--socket", "/x.sock", "--instance", "y"], ["--instance", "y", "up", "--socket", "/x"],
                     ["down", "--steps", "1", "--to", "0"], ["status", "--color", "sometimes"]):
            with self.subTest(args=args):
                r = self.assertCtl(ctl(*args), 2)
                self.assertIn("exclude each other" if "--color" not in args else "auto, always or never", r.err)
                self.assertEqual(r.out, "")


if __name__ == "__main__":
    harness.main()
