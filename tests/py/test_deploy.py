"""The deployment files (docker-compose.yml, deploy/) parse, and every
command, flag, environment variable, port and path they use exists.

No Docker engine, cluster or Slurm runs here, so this is what can be
known without them:

  - every YAML file parses (Compose, Kubernetes, kustomize, configs), and
    the coordinator configurations pass `nader-coordinator --check`;
  - each Dockerfile is well formed by a structural check of its own:
    known instructions, continuation lines closed, multi-stage with
    named stages that COPY --from refers to, a non-root USER, a
    HEALTHCHECK running `nader health`, exec-form arrays that parse,
    COPY sources that exist in the repository and are not excluded by
    .dockerignore, build packages that the Makefile's DEB_PACKAGES
    lists, make targets that the Makefile builds;
  - every invocation of nader, nader-coordinator and nader-worker (in
    Compose commands and health checks, Kubernetes args and probes,
    Dockerfile CMD/HEALTHCHECK, the Slurm script, systemd ExecStart and
    worker.conf) uses only flags its --help lists (for nader, the
    subcommand's), with devices and endpoints of the right form;
  - environment variables handed to nader are ones a binary reads (found
    in it) or the default of a configuration key in `nader-coordinator
    --doc` (llm.api_key_env's OPENAI_API_KEY);
  - ports: what the configuration binds is what the images EXPOSE, the
    Services and Compose publish, and what workers and clients connect
    to; paths: the state, keys, data and scratch folders used are
    mounted where they are used;
  - systemd units pass `systemd-analyze verify` (binaries pointed at the
    build), shell scripts pass `bash -n` (and shellcheck when present).

About 3 s.
"""
import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import unittest

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("NADER_BIN", os.path.join(ROOT, "build"))
DEPLOY = os.path.join(ROOT, "deploy")
BINARIES = ("nader", "nader-coordinator", "nader-worker")
SYSTEM_ENV = re.compile(r"^(SLURM_\w+|TMPDIR|HOME|PATH|HOSTNAME)$")


def out(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    return p.returncode, p.stdout


_HELP = {}


def help_flags(binary, sub=None):
    """Flags listed by BINARY [SUB] --help."""
    key = (binary, sub)
    if key not in _HELP:
        cmd = [os.path.join(BIN, binary)] + ([sub] if sub else []) + \
              ["--help"]
        rc, text = out(cmd)
        assert rc == 0, "%s: %s" % (cmd, text)
        _HELP[key] = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", text))
    return _HELP[key]


def load_yaml_docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def config_ports():
    with open(os.path.join(DEPLOY, "config", "coordinator.yaml")) as f:
        c = yaml.safe_load(f)
    ports = {}
    for key, ep in (("workers", c["workers"]["endpoint"]),
                    ("status", c["status"]["endpoint"]),
                    ("metrics", c["metrics"]["address"])):
        ports[key] = int(ep.rsplit(":", 1)[1])
    return c, ports


# ------------------------------------------------------------ Dockerfiles

DOCKER_INSTRUCTIONS = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV",
                       "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER",
                       "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL",
                       "HEALTHCHECK", "SHELL"}


def dockerfile(path):
    """[(instruction, argument text)] with continuations joined."""
    out_, cur = [], None
    with open(path) as f:
        for n, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            if cur is None:
                s = line.strip()
                if not s or s.startswith("#"):
                    continue
                cur = ""
            elif line.strip().startswith("#"):
                continue
            if line.rstrip().endswith("\\"):
                cur += line.rstrip()[:-1] + " "
                continue
            cur += line
            word, _, rest = cur.strip().partition(" ")
            if word.upper() not in DOCKER_INSTRUCTIONS:
                raise AssertionError("%s:%d: unknown instruction %s"
                                     % (path, n, word))
            out_.append((word.upper(), rest.strip()))
            cur = None
    if cur is not None:
        raise AssertionError("%s: a continued line never ends" % path)
    return out_


def dockerignore():
    pats = []
    with open(os.path.join(ROOT, ".dockerignore")) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                pats.append(line)
    return pats


def makefile_packages():
    with open(os.path.join(ROOT, "Makefile")) as f:
        text = f.read()
    m = re.search(r"DEB_PACKAGES :=(.*?)\n(?!\s)", text, re.S)
    return set(m.group(1).replace("\\", " ").split())


def compose_target(volume):
    """The container path of a Compose short volume spec."""
    parts = volume.split(":")
    if parts[-1] in ("ro", "rw"):
        parts = parts[:-1]
    return parts[-1]


# ------------------------------------------------------------ invocations

class Invocations:
    """Every command line that runs one of nader's binaries."""

    def __init__(self):
        self.found = []          # (where, binary, [args])

    def add(self, where, argv):
        argv = [a for a in argv if a is not None]
        for i, a in enumerate(argv):
            base = os.path.basename(a)
            if base in BINARIES:
                self.found.append((where, base, argv[i + 1:]))
                return
            if base == "nader-worker-entrypoint":
                self.found.append((where, "nader-worker",
                                   ["--name", "X"] + argv[i + 1:]))
                return

    def add_shell(self, where, text):
        """Command lines inside shell text (a -c script, a unit line):
        from each binary's name to the end of its simple command."""
        text = re.sub(r"\\\n", " ", text)
        for m in re.finditer(r"(?<![\w.-])(?:/[\w/.-]*/)?(nader(?:-coordinator"
                             r"|-worker(?:-entrypoint)?)?)(?![\w./-])", text):
            rest = re.split(r"\n|;|&&|\|\||'", text[m.end():], 1)[0]
            try:
                words = shlex.split(rest)
            except ValueError:
                words = rest.split()
            self.add(where, [m.group(1)] + words)


def check_args(tc, where, binary, args):
    sub = None
    if binary == "nader":
        tc.assertTrue(args, "%s: nader without a subcommand" % where)
        sub, args = args[0], args[1:]
        rc, text = out([os.path.join(BIN, "nader"), "help"])
        tc.assertIn("  %s " % sub, text, "%s: no subcommand %s"
                    % (where, sub))
    flags = help_flags(binary, sub)
    for i, a in enumerate(args):
        if not a.startswith("--"):
            continue
        flag = a.split("=", 1)[0]
        tc.assertIn(flag, flags, "%s: %s %s has no flag %s" %
                    (where, binary, sub or "", flag))
        val = args[i + 1] if i + 1 < len(args) else ""
        if flag == "--device":
            tc.assertRegex(val, r"^(cpu|all|cuda:\d+|%i)$", where)
        if flag == "--connect":
            tc.assertRegex(val, r'^"?(tcp://[\w.-]+:\d+|\$\d|\$\w+)"?$',
                           where)


class Deploy(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.cfg, cls.ports = config_ports()
        cls.inv = Invocations()
        cls.env = []            # (where, name)
        with open(os.path.join(ROOT, "docker-compose.yml")) as f:
            cls.compose = yaml.safe_load(f)
        cls.k8s = []
        for p in sorted(glob.glob(os.path.join(DEPLOY, "k8s", "*.yaml"))):
            cls.k8s += [(p, d) for d in load_yaml_docs(p)]
        cls.images = {}         # image name -> Dockerfile facts
        for p in glob.glob(os.path.join(DEPLOY, "docker", "Dockerfile.*")):
            cls.images[p] = dockerfile(p)

    # -- parsing --------------------------------------------------------
    def test_yaml_parses_and_configs_check(self):
        files = [os.path.join(ROOT, "docker-compose.yml")] + \
            glob.glob(os.path.join(DEPLOY, "**", "*.yaml"), recursive=True)
        self.assertGreaterEqual(len(files), 8)
        for p in files:
            docs = load_yaml_docs(p)
            self.assertTrue(docs, p)
            if "/k8s/" in p:
                for d in docs:
                    self.assertIn("apiVersion", d, p)
                    self.assertIn("kind", d, p)
                    self.assertIn("name", d["metadata"], p)
        # search.yaml's base design is put beside it where it is deployed
        # (Compose, the ConfigMap); here it is named as the guide does.
        base = os.path.join(ROOT, "examples", "blocks", "resnet_basic.txt")
        for p in glob.glob(os.path.join(DEPLOY, "config", "*.yaml")):
            rc, text = out([os.path.join(BIN, "nader-coordinator"),
                            "--check", "--config", p,
                            "--set", "search.base=" + base])
            self.assertEqual(rc, 0, text)
        # deploy/blocks/ holds copies of example blocks, for kustomize,
        # which reads nothing outside deploy/.
        for p in glob.glob(os.path.join(DEPLOY, "blocks", "*.txt")):
            with open(p) as a, open(os.path.join(
                    ROOT, "examples", "blocks", os.path.basename(p))) as b:
                self.assertEqual(a.read(), b.read(), p + " differs")
        kust = load_yaml_docs(os.path.join(DEPLOY, "kustomization.yaml"))[0]
        for r in kust["resources"]:
            self.assertTrue(os.path.isfile(os.path.join(DEPLOY, r)), r)
        for gen in kust["configMapGenerator"]:
            for f in gen["files"]:
                self.assertTrue(os.path.isfile(
                    os.path.join(DEPLOY, f.split("=", 1)[-1])), f)

    def test_dockerfiles(self):
        packages = makefile_packages()
        ignored = dockerignore()
        targets = {"build/nader", "build/nader-coordinator",
                   "build/nader-worker", "build/lib/nader-cuda.so"}
        self.assertEqual(len(self.images), 2)
        for path, ins in self.images.items():
            name = os.path.basename(path)
            froms = [a for i, a in ins if i == "FROM"]
            self.assertGreaterEqual(len(froms), 2, name + ": multi-stage")
            stages = {m.group(1) for m in
                      (re.search(r"\bAS (\w+)$", f, re.I) for f in froms)
                      if m}
            self.assertIn("build", stages, name)
            self.assertEqual(ins[0][0] in ("FROM", "ARG"), True, name)
            final = max(k for k, (i, _) in enumerate(ins) if i == "FROM")
            tail = ins[final:]
            users = [a for i, a in tail if i == "USER"]
            self.assertTrue(users and users[-1] not in ("root", "0"),
                            name + ": runs as root")
            hc = [a for i, a in tail if i == "HEALTHCHECK"]
            self.assertEqual(len(hc), 1, name)
            self.assertIn("CMD", hc[0])
            cmd = json.loads(hc[0][hc[0].index("CMD") + 3:].strip())
            self.inv.add(name + " HEALTHCHECK", cmd)
            if cmd[0] == "/bin/sh":
                self.inv.add_shell(name + " HEALTHCHECK", cmd[-1])
            self.assertIn("nader health", " ".join(cmd), name)
            for i, a in ins:
                if i in ("CMD", "ENTRYPOINT", "VOLUME") and \
                        a.startswith("["):
                    json.loads(a)
                if i == "COPY" and "--from=" in a:
                    stage = re.search(r"--from=(\w+)", a).group(1)
                    self.assertIn(stage, stages, name)
                elif i == "COPY":
                    for src in a.split()[:-1]:
                        if src == ".":
                            continue
                        self.assertTrue(os.path.exists(
                            os.path.join(ROOT, src)), name + ": " + src)
                        for pat in ignored:
                            self.assertFalse(src.startswith(pat.rstrip("/")
                                                            + "/"),
                                             name + ": ignored " + src)
                if i == "RUN" and "apt-get install" in a and \
                        "runtime-packages" not in a:
                    pk = [w for w in a.split("--no-install-recommends")[1]
                          .split("&&")[0].split() if not w.startswith("-")]
                    self.assertTrue(pk)
                    for p in pk:
                        self.assertIn(p, packages, name + ": " + p)
                if i == "RUN" and "make " in a:
                    for t in re.findall(r"\bbuild/[\w/.-]*[\w]", a):
                        self.assertIn(t, targets, name)
                    for s in re.findall(r"\b(deploy/[\w/.-]+)", a):
                        self.assertTrue(os.path.isfile(
                            os.path.join(ROOT, s)), s)
            exposed = {int(p) for i, a in tail if i == "EXPOSE"
                       for p in a.split()}
            if exposed:
                self.assertEqual(exposed, set(self.ports.values()), name)
            ep = [json.loads(a) for i, a in tail if i == "ENTRYPOINT"]
            cmd = [json.loads(a) for i, a in tail if i == "CMD"]
            copied = " ".join(a for i, a in tail if i == "COPY")
            for e in ep:
                self.assertTrue(re.search(r"\b%s\b" % re.escape(e[0]),
                                          copied) or e[0] in BINARIES, e)
                self.inv.add(name + " ENTRYPOINT+CMD",
                             e + (cmd[-1] if cmd else []))

    # -- compose and kubernetes ------------------------------------------
    def test_compose(self):
        c = self.compose
        svc = c["services"]
        for name in ("coordinator", "worker", "worker-cpu", "keys"):
            self.assertIn(name, svc)
        images = {}
        for name, s in svc.items():
            if "build" in s:
                df = os.path.normpath(os.path.join(
                    ROOT, s["build"]["context"], s["build"]["dockerfile"]))
                self.assertTrue(os.path.isfile(df), df)
                images[s["image"]] = df
        for name, s in svc.items():
            where = "compose " + name
            self.assertIn(s["image"], images, where)
            df = self.images[images[s["image"]]]
            ep = s.get("entrypoint") or next(
                json.loads(a) for i, a in reversed(df) if i == "ENTRYPOINT")
            if ep[:2] == ["/bin/sh", "-c"]:
                script = ep[2] if len(ep) > 2 else " ".join(s["command"])
                self.inv.add_shell(where, script)
                if len(ep) > 2:
                    self.inv.add(where, ["nader-worker"] + s["command"])
            else:
                self.inv.add(where, ep + s.get("command", []))
            hc = s.get("healthcheck", {}).get("test")
            if hc:
                self.assertIn(hc[0], ("CMD", "CMD-SHELL"))
                if hc[0] == "CMD":
                    self.inv.add(where + " healthcheck", hc[1:])
                else:
                    self.inv.add_shell(where + " healthcheck",
                                       hc[1].replace("$$", "$"))
            for k in s.get("environment", {}):
                self.env.append((where, k))
            mounts = [compose_target(v) for v in s.get("volumes", [])]
            self.check_mounts(where, " ".join(map(str, ep + s.get(
                "command", []))), mounts)
        # Ports: published as the configuration binds them.
        pub = {int(p.split(":")[0]) for p in svc["coordinator"]["ports"]}
        self.assertEqual(pub, set(self.ports.values()))
        res = svc["worker"]["deploy"]["resources"]["reservations"]
        self.assertEqual(res["devices"][0]["capabilities"], ["gpu"])
        self.assertEqual(set(c["volumes"]), {"state", "keys"})

    def check_mounts(self, where, command, mounts):
        """Folders a command uses are mounted in its container."""
        need = {"/data": "--data /data", "/scratch": "--scratch /scratch",
                "/etc/nader/keys": "/etc/nader/keys/",
                "/etc/nader/search/search.yaml":
                    "/etc/nader/search/search.yaml"}
        for path, marker in need.items():
            if marker in command:
                self.assertTrue(any(path == m or path.startswith(m + "/")
                                    for m in mounts),
                                "%s: %s is not mounted" % (where, path))
        if "--config /etc/nader/coordinator.yaml" in command:
            state = self.cfg["state_dir"]
            self.assertTrue(any(state.startswith(m + "/") for m in mounts),
                            "%s: state %s not on a volume" % (where, state))

    def test_kubernetes(self):
        kinds = {}
        for path, d in self.k8s:
            kinds.setdefault(d["kind"], []).append(d)
        self.assertIn("PersistentVolumeClaim", kinds)
        self.assertIn("Service", kinds)
        deps = {d["metadata"]["name"]: d for d in kinds["Deployment"]}
        secrets = {d["metadata"]["name"]: d for d in kinds["Secret"]}
        self.assertEqual(set(deps), {"nader-coordinator", "nader-worker"})
        for name, d in deps.items():
            spec = d["spec"]["template"]["spec"]
            self.assertTrue(spec["securityContext"]["runAsNonRoot"])
            self.assertNotEqual(spec["securityContext"]["runAsUser"], 0)
            vols = {v["name"]: v for v in spec["volumes"]}
            for ctr in spec["containers"]:
                where = "k8s " + name
                img = ctr["image"].split(":")[0]
                df = [p for p in self.images if
                      (img == "nader" and p.endswith("coordinator")) or
                      (img == "nader-worker" and p.endswith("worker"))]
                self.assertEqual(len(df), 1, ctr["image"])
                ep = next(json.loads(a) for i, a in reversed(
                    self.images[df[0]]) if i == "ENTRYPOINT")
                self.inv.add(where, ep + ctr.get("args", []))
                for probe in ("startupProbe", "livenessProbe",
                              "readinessProbe"):
                    if probe in ctr:
                        cmd = ctr[probe]["exec"]["command"]
                        self.inv.add(where + " " + probe, cmd)
                        if cmd[0] == "/bin/sh":
                            self.inv.add_shell(where + " " + probe, cmd[-1])
                for e in ctr.get("env", []):
                    self.env.append((where, e["name"]))
                    ref = e.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        self.assertIn(ref["name"], secrets)
                        self.assertIn(ref["key"],
                                      secrets[ref["name"]]["stringData"])
                mounts = [m["mountPath"] for m in ctr["volumeMounts"]]
                for m in ctr["volumeMounts"]:
                    self.assertIn(m["name"], vols, where)
                self.check_mounts(where, " ".join(ep + ctr.get("args", [])),
                                  mounts)
                ports = {p["containerPort"] for p in ctr.get("ports", [])}
                if ports:
                    self.assertEqual(ports, set(self.ports.values()))
            for v in vols.values():
                if "secret" in v:
                    sec = secrets[v["secret"]["secretName"]]
                    for item in v["secret"].get("items", []):
                        self.assertIn(item["key"], sec["stringData"])
                if "persistentVolumeClaim" in v:
                    claims = [c["metadata"]["name"] for c in
                              kinds["PersistentVolumeClaim"]]
                    self.assertIn(v["persistentVolumeClaim"]["claimName"],
                                  claims)
        worker = deps["nader-worker"]["spec"]["template"]["spec"]
        self.assertEqual(worker["containers"][0]["resources"]["limits"]
                         ["nvidia.com/gpu"], 1)
        self.assertEqual(deps["nader-coordinator"]["spec"]["replicas"], 1)
        self.assertEqual(deps["nader-coordinator"]["spec"]["strategy"]
                         ["type"], "Recreate")
        svc = kinds["Service"][0]
        self.assertEqual({p["port"] for p in svc["spec"]["ports"]},
                         set(self.ports.values()))
        sel = svc["spec"]["selector"]
        labels = deps["nader-coordinator"]["spec"]["template"]["metadata"][
            "labels"]
        self.assertTrue(all(labels.get(k) == v for k, v in sel.items()))

    # -- slurm and systemd -----------------------------------------------
    def test_scripts_and_units(self):
        scripts = glob.glob(os.path.join(DEPLOY, "slurm", "*.sbatch")) + \
            glob.glob(os.path.join(DEPLOY, "docker", "*.sh"))
        for s in scripts:
            rc, text = out(["bash", "-n", s])
            self.assertEqual(rc, 0, text)
            if shutil.which("shellcheck"):
                rc, text = out(["shellcheck", "-S", "warning", s])
                self.assertEqual(rc, 0, text)
            with open(s) as f:
                body = f.read()
            body = "\n".join(l for l in body.split("\n")
                             if not l.lstrip().startswith("#"))
            self.inv.add_shell(os.path.basename(s), body)
            for v in re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", body):
                self.env.append((os.path.basename(s), v))
        units = glob.glob(os.path.join(DEPLOY, "systemd", "*.service"))
        self.assertEqual(len(units), 2)
        with open(os.path.join(DEPLOY, "systemd", "worker.conf")) as f:
            conf = f.read()
        worker_args = shlex.split(re.search(r'WORKER_ARGS="(.*)"',
                                            conf).group(1))
        for u in units:
            with open(u) as f:
                text = f.read()
            for line in text.split("\n"):
                m = re.match(r"(ExecStart\w*)=(.*)", line)
                if not m:
                    continue
                cmd = m.group(2).replace("$WORKER_ARGS",
                                         " ".join(worker_args))
                if cmd.startswith("/bin/sh -c"):
                    self.inv.add_shell(os.path.basename(u),
                                       shlex.split(cmd)[2])
                else:
                    self.inv.add(os.path.basename(u), shlex.split(cmd))
        if not shutil.which("systemd-analyze"):
            return
        tmp = tempfile.mkdtemp()
        try:
            for u in units:
                with open(u) as f:
                    text = f.read().replace("/usr/local/bin/", BIN + "/")
                text = text.replace("/etc/nader/worker.conf", os.path.join(
                    DEPLOY, "systemd", "worker.conf"))
                with open(os.path.join(tmp, os.path.basename(u)), "w") as f:
                    f.write(text)
            names = [os.path.join(tmp, os.path.basename(u).replace(
                "@.", "@cpu.")) for u in units]
            rc, text = out(["systemd-analyze", "verify"] + names)
            self.assertEqual((rc, text.strip()), (0, ""), text)
        finally:
            shutil.rmtree(tmp)

    # -- the cross checks, after everything is collected ------------------
    def test_zz_invocations_env_ports(self):
        # Runs last (unittest sorts by name): the other tests have
        # collected the invocations and variables into the class.
        seen = {b for _, b, _ in self.inv.found}
        self.assertEqual(seen, set(BINARIES), self.inv.found)
        for where, binary, args in self.inv.found:
            check_args(self, where, binary, args)
        binaries_text = b""
        for b in BINARIES:
            with open(os.path.join(BIN, b), "rb") as f:
                binaries_text += f.read()
        rc, ref = out([os.path.join(BIN, "nader-coordinator"), "--doc"])
        for where, name in self.env:
            if SYSTEM_ENV.match(name):
                continue
            known = name.encode() in binaries_text or \
                re.search(r"^\| `[\w.]+` \| \w+ \| `%s` \|" %
                          re.escape(name), ref, re.M)
            script_local = where.endswith((".sbatch", ".sh")) and \
                not name.startswith("NADER")
            self.assertTrue(known or script_local,
                            "%s: environment variable %s is read by no "
                            "nader binary" % (where, name))
        # Workers connect to the workers port, clients to the status port.
        for where, binary, args in self.inv.found:
            if "--connect" in args:
                ep = args[args.index("--connect") + 1]
                want = self.ports["workers" if binary == "nader-worker"
                                  else "status"]
                if ep.startswith("tcp://"):
                    self.assertEqual(int(ep.rsplit(":", 1)[1]), want, where)
        for s in self.compose["services"].values():
            env = s.get("environment", {})
            if "NADER_CONNECT" in env:
                self.assertTrue(env["NADER_CONNECT"].endswith(
                    ":%d" % self.ports["status"]))
        print("\nchecked %d invocations of nader's binaries, %d environment "
              "variables" % (len(self.inv.found), len(self.env)))


if __name__ == "__main__":
    unittest.main(verbosity=2)
