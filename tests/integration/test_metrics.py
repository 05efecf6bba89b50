# SPDX-License-Identifier: MIT
"""Metrics for Prometheus ([metrics] textfile and listen): a real daemon runs an "up" that
succeeds and one that fails, and the text file (node_exporter's textfile collector) and the HTTP
endpoint on a loopback address then carry the schema version, the pending count, the jobs by
outcome, the failures by code and the last job's outcome, in Prometheus' text format (parsed
here: every sample under its HELP and TYPE lines, counters named *_total)."""

import os
import re
import signal
import subprocess
import urllib.error
import urllib.request

import harness

EXAMPLE_LATEST = 8
BROKEN_UP = "CREATE TABLE metrics_probe (a INTEGER);\nINSERT INTO no_such_table VALUES (1);\n"
METRIC_TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)')


def parse_exposition(text):
    """Prometheus' text format 0.0.4, strictly: {name: {"help", "type", "samples": {labels: value}}}.
    Raises AssertionError on anything a scraper would reject or that this project must not do."""
    metrics = {}
    assert text.endswith("\n"), "the exposition must end with a newline"
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert name not in metrics, "line %d: a second HELP for %s" % (n, name)
            assert help_text, "line %d: empty HELP for %s" % (n, name)
            metrics[name] = {"help": help_text, "type": None, "samples": {}}
        elif line.startswith("# TYPE "):
            name, _, typ = line[7:].partition(" ")
            assert name in metrics and metrics[name]["type"] is None, "line %d: TYPE for %s not after its HELP" % (n, name)
            assert typ in METRIC_TYPES, "line %d: type %r" % (n, typ)
            assert typ != "counter" or name.endswith("_total"), "line %d: counter %s not named *_total" % (n, name)
            metrics[name]["type"] = typ
        else:
            m = SAMPLE.match(line)
            assert m, "line %d is not a sample: %r" % (n, line)
            name, labels, value = m.groups()
            assert name in metrics and metrics[name]["type"], "line %d: sample of %s without HELP/TYPE" % (n, name)
            pairs = LABEL.findall(labels or "")
            assert ",".join('%s="%s"' % p for p in pairs) == (labels or ""), "line %d: labels %r" % (n, labels)
            key = tuple(sorted(pairs))
            assert key not in metrics[name]["samples"], "line %d: duplicate sample" % n
            metrics[name]["samples"][key] = float(value)
    return metrics


def value(metrics, name, **labels):
    """The one sample of name whose labels include these."""
    found = [v for k, v in metrics[name]["samples"].items() if set(labels.items()) <= set(k)]
    assert len(found) == 1, "%s%r: %d samples in %r" % (name, labels, len(found), metrics[name]["samples"])
    return found[0]


class MetricsTest(harness.TestCase):

    def setUp(self):
        super().setUp()
        self.migrations = self.copy_examples()
        self.db = self.path("app.db")
        self.textfile = self.path("textfile", "migrated-app.prom")
        os.makedirs(os.path.dirname(self.textfile))

    def port(self, d):
        """The port the daemon logged for listen = 127.0.0.1:0."""
        m = harness.wait_until(lambda: re.search(r"Metrics on http://\S+ \(port (\d+)\)", d.log()), 10,
                               what="the metrics endpoint's log line")
        return int(m.group(1))

    def scrape(self, port):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=harness.RPC_TIMEOUT) as r:
            self.assertEqual(r.status, 200)
            self.assertTrue(r.headers["Content-Type"].startswith("text/plain; version=0.0.4"))
            return r.read().decode()

    def read_textfile(self):
        with open(self.textfile) as f:
            return f.read()

    def check_after_up_and_failed_up(self, text):
        m = parse_exposition(text)
        db = self.db
        for name, typ in (("migrated_schema_version", "gauge"), ("migrated_pending_migrations", "gauge"),
                          ("migrated_problems", "gauge"), ("migrated_jobs_total", "counter"),
                          ("migrated_job_failures_total", "counter"), ("migrated_downtime_seconds_total", "counter"),
                          ("migrated_lock_waits_total", "counter"), ("migrated_lock_wait_seconds_total", "counter"),
                          ("migrated_last_job_success", "gauge"), ("migrated_last_job_duration_seconds", "gauge"),
                          ("migrated_last_job_downtime_seconds", "gauge"),
                          ("migrated_last_job_end_timestamp_seconds", "gauge")):
            self.assertIn(name, m, text)
            self.assertEqual(m[name]["type"], typ, name)
            for labels in m[name]["samples"]:
                self.assertIn(("database", db), labels, name)
        self.assertEqual(value(m, "migrated_schema_version"), EXAMPLE_LATEST)
        self.assertEqual(value(m, "migrated_pending_migrations"), 1)  # the broken one
        self.assertEqual(value(m, "migrated_problems"), 0)
        self.assertEqual(value(m, "migrated_jobs_total", kind="up", outcome="succeeded"), 1)
        self.assertEqual(value(m, "migrated_jobs_total", kind="up", outcome="failed"), 1)
        self.assertEqual(value(m, "migrated_job_failures_total", code="migration_failed"), 1)
        self.assertEqual(value(m, "migrated_last_job_success", kind="up"), 0)
        self.assertGreaterEqual(value(m, "migrated_last_job_duration_seconds", kind="up"), 0)
        self.assertEqual(value(m, "migrated_last_job_downtime_seconds", kind="up"), 0)  # no dependents
        self.assertEqual(value(m, "migrated_downtime_seconds_total"), 0)
        self.assertEqual(value(m, "migrated_lock_waits_total"), 0)
        self.assertGreater(value(m, "migrated_last_job_end_timestamp_seconds", kind="up"), 1.5e9)

    def up_then_failing_up(self, d):
        r = d.ctl("up", json_out=False)
        self.assertCtl(r, 0)
        with open(os.path.join(self.migrations, "0009_broken.up.sql"), "w") as f:
            f.write(BROKEN_UP)
        r = d.ctl("up", json_out=False)
        self.assertNotEqual(r.rc, 0, r)
        self.assertIn("no_such_table", r.err)

    def test_textfile_and_http_after_an_up_and_a_failing_up(self):
        d = self.daemon(database=self.db, migrations=self.migrations,
                        extra_args=["--metrics-textfile", self.textfile, "--metrics-listen", "127.0.0.1:0"])
        port = self.port(d)
        # before any job: the schema's facts, no last job
        m = parse_exposition(self.read_textfile())
        self.assertEqual(value(m, "migrated_schema_version"), 0)
        self.assertEqual(value(m, "migrated_pending_migrations"), EXAMPLE_LATEST)
        self.assertNotIn("migrated_last_job_success", m)
        self.assertEqual(parse_exposition(self.scrape(port)), m)

        self.up_then_failing_up(d)
        self.check_after_up_and_failed_up(self.read_textfile())
        self.check_after_up_and_failed_up(self.scrape(port))
        # written by rename: nothing but the file itself in the collector's directory
        self.assertEqual(os.listdir(os.path.dirname(self.textfile)), [os.path.basename(self.textfile)])
        self.assertEqual(os.stat(self.textfile).st_mode & 0o777, 0o644)
        # the man page describes every metric, the example alert rules use only real ones
        names = set(parse_exposition(self.read_textfile()))
        with open(os.path.join(harness.SRC_ROOT, "packaging", "man", "migrated.8.scd")) as f:
            man = f.read().replace("\\_", "_")
        for name in names:
            self.assertIn("*%s*" % name, man)
        with open(os.path.join(harness.SRC_ROOT, "packaging", "examples", "migrated-alerts.yml")) as f:
            used = set(re.findall(r"\bmigrated_[a-z_]+", f.read()))
        self.assertTrue(used)
        self.assertLessEqual(used, names)
        # only /metrics
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=harness.RPC_TIMEOUT)
        self.assertEqual(e.exception.code, 404)

    def test_metrics_section_of_the_config_file(self):
        conf = self.path("app.conf")
        with open(conf, "w") as f:
            f.write("[database]\npath = %s\n[migrations]\ndirectory = %s\n[metrics]\ntextfile = %s\n"
                    % (self.db, self.migrations, self.textfile))
        d = self.daemon(config=conf)
        self.up_then_failing_up(d)
        self.check_after_up_and_failed_up(self.read_textfile())

    def test_listen_on_other_than_loopback_is_refused_at_start(self):
        for listen in ("0.0.0.0:9464", "192.0.2.1:9464", "127.0.0.1", "127.0.0.1:99999", "[::]:9464"):
            r = subprocess.run([harness.MIGRATED_BIN, "--database", self.db, "--migrations", self.migrations,
                                "--socket", self.path("x.sock"), "--metrics-listen", listen],
                               env=dict(os.environ, STATE_DIRECTORY=self.path("state")), stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=harness.STOP_TIMEOUT)
            self.assertEqual(r.returncode, 2, listen)  # a usage error, before anything is opened
            self.assertIn("--metrics-listen takes 127.0.0.1:PORT, [::1]:PORT or localhost:PORT", r.stderr)
            self.assertIn(listen, r.stderr)

    def test_textfile_follows_a_rescan_without_a_job(self):
        d = self.daemon(database=self.db, migrations=self.migrations, extra_args=["--metrics-textfile", self.textfile])
        self.assertCtl(d.ctl("up", json_out=False), 0)
        with open(os.path.join(self.migrations, "0009_more.up.sql"), "w") as f:
            f.write("CREATE TABLE more (a INTEGER);\n")
        d.signal(signal.SIGHUP)  # a release dropped a file in: the rescan shows it pending
        harness.wait_until(lambda: value(parse_exposition(self.read_textfile()), "migrated_pending_migrations") == 1,
                           30, interval=0.05, what="the text file to show the new migration pending")
        m = parse_exposition(self.read_textfile())
        self.assertEqual(value(m, "migrated_schema_version"), EXAMPLE_LATEST)
        self.assertEqual(value(m, "migrated_last_job_success", kind="up"), 1)

    def test_no_metrics_unless_configured(self):
        d = self.daemon(database=self.db, migrations=self.migrations)
        self.assertCtl(d.ctl("up", json_out=False), 0)
        self.assertNotIn("Metrics", d.log())


if __name__ == "__main__":
    harness.main()
