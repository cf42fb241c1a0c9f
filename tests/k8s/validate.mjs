// validate.mjs K8S_DIR [--ringway BINARY] [--expect-fail] [--quiet]
//
// Offline checks of the Kubernetes manifests (tests/k8s/validate.sh runs it):
//  1. renders K8S_DIR/kustomization.yaml, and again with the
//     components/runtime-default component, with a small renderer of the
//     kustomize features k8s/ uses (resources, configMapGenerator, images,
//     patches: JSON 6902 and `$patch: delete`; anything else is an error);
//  2. validates every rendered object against the Kubernetes OpenAPI schemas
//     of npm kubernetes-models (types, required fields, enums) and rejects
//     unknown fields (kubernetes-models accepts them, so the field names are
//     read from its TypeScript declarations and walked here);
//  3. checks the project's own rules (grace period >= shutdown delay + drain
//     timeout, hostNetwork, probes, securityContext, integer CPU limit, ...);
//  4. checks k8s/seccomp/ringway.json (OCI seccomp format, every syscall name
//     known to the kernel headers, io_uring and ringway's needs allowed);
//  5. runs `ringway --check-config` on the ConfigMap's ringway.yaml;
//  6. validates k8s/optional/*.yaml the same way where a model exists.
// Exits 0 when all pass; prints one line per failure. --expect-fail inverts
// the exit status (for the self-test on a broken copy).
import { createRequire } from 'node:module';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const yaml = require('js-yaml');
const here = path.dirname(fileURLToPath(import.meta.url));
const modelsDir = path.dirname(require.resolve('kubernetes-models/package.json'));
const apimachineryDir = path.dirname(require.resolve('@kubernetes-models/apimachinery/package.json'));

const args = process.argv.slice(2);
const k8sDir = path.resolve(args.find((a) => !a.startsWith('--') && args[args.indexOf(a) - 1] !== '--ringway') || 'k8s');
const ringway = args.includes('--ringway') ? args[args.indexOf('--ringway') + 1] : process.env.RW_BINARY;
const expectFail = args.includes('--expect-fail');
const quiet = args.includes('--quiet');

const errors = [];
const fail = (where, msg) => errors.push(`${where}: ${msg}`);
const info = (msg) => quiet || console.log(msg);

// ---------------------------------------------------------------- rendering
const loadDocs = (file) => yaml.loadAll(fs.readFileSync(file, 'utf8')).filter((d) => d != null);
const KNOWN_KUSTOMIZE_KEYS = new Set(['apiVersion', 'kind', 'resources', 'components', 'configMapGenerator',
    'generatorOptions', 'images', 'patches']);
const idOf = (o) => `${o.kind}/${o.metadata?.namespace ?? ''}/${o.metadata?.name}`;

function render(dir, extraComponents = []) {
    const kfile = path.join(dir, 'kustomization.yaml');
    const k = loadDocs(kfile)[0];
    for (const key of Object.keys(k))
        if (!KNOWN_KUSTOMIZE_KEYS.has(key)) fail(kfile, `kustomize key '${key}' is not supported by this renderer`);
    let objs = [];
    for (const r of k.resources ?? []) {
        const p = path.join(dir, r);
        if (fs.statSync(p).isDirectory()) objs.push(...render(p));
        else objs.push(...loadDocs(p).map((o) => ({ ...o, __file: path.relative(k8sDir, p) })));
    }
    const noHash = k.generatorOptions?.disableNameSuffixHash === true;
    for (const g of k.configMapGenerator ?? []) {
        if (!noHash) fail(kfile, 'configMapGenerator needs generatorOptions.disableNameSuffixHash here');
        const data = {};
        for (const f of g.files ?? []) data[path.basename(f)] = fs.readFileSync(path.join(dir, f), 'utf8');
        const metadata = { name: g.name, ...(g.namespace ? { namespace: g.namespace } : {}) };
        objs.push({ apiVersion: 'v1', kind: 'ConfigMap', metadata, data, __file: path.relative(k8sDir, kfile) });
    }
    for (const c of [...(k.components ?? []), ...extraComponents]) objs = applyComponent(path.resolve(dir, c), objs);
    for (const p of k.patches ?? []) objs = applyPatch(dir, p, objs, kfile);
    for (const img of k.images ?? []) {
        for (const c of allContainers(objs)) {
            const [name, tag] = splitImage(c.image);
            if (name !== img.name) continue;
            c.image = `${img.newName ?? name}:${img.newTag ?? tag}`;
        }
    }
    const seen = new Set();
    for (const o of objs) {
        if (seen.has(idOf(o))) fail(kfile, `${idOf(o)} is defined twice`);
        seen.add(idOf(o));
    }
    return objs;
}

function applyComponent(dir, objs) {
    const kfile = path.join(dir, 'kustomization.yaml');
    const k = loadDocs(kfile)[0];
    if (k.kind !== 'Component') fail(kfile, `kind ${k.kind}, expected Component`);
    for (const p of k.patches ?? []) objs = applyPatch(dir, p, objs, kfile);
    return objs;
}

function applyPatch(dir, p, objs, kfile) {
    if (p.path !== undefined) {
        const doc = loadDocs(path.join(dir, p.path))[0];
        if (doc.$patch !== 'delete') {
            fail(kfile, `patch ${p.path}: only '$patch: delete' strategic-merge patches are supported`);
            return objs;
        }
        const id = idOf(doc);
        if (!objs.some((o) => idOf(o) === id)) fail(kfile, `patch ${p.path} deletes ${id}, which is not there`);
        return objs.filter((o) => idOf(o) !== id);
    }
    const ops = yaml.load(p.patch);
    const t = p.target ?? {};
    const targets = objs.filter((o) => o.kind === t.kind && o.metadata?.name === t.name &&
        (!t.group && !t.version ? true : o.apiVersion === (t.group ? `${t.group}/${t.version}` : t.version)));
    if (targets.length === 0) fail(kfile, `patch target ${JSON.stringify(t)} matches nothing`);
    for (const o of targets) {
        for (const op of ops) {
            const keys = op.path.split('/').slice(1).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
            const last = keys.pop();
            let node = o;
            for (const key of keys) node = node?.[key];
            if (node == null || (op.op !== 'add' && !(last in node))) {
                fail(kfile, `patch ${op.op} ${op.path}: no such path in ${idOf(o)}`);
                continue;
            }
            if (op.op === 'replace' || op.op === 'add') node[last] = structuredClone(op.value);
            else if (op.op === 'remove') delete node[last];
            else fail(kfile, `patch op ${op.op} is not supported`);
        }
    }
    return objs;
}

function splitImage(image) {
    const i = image.lastIndexOf(':');
    return i > image.lastIndexOf('/') ? [image.slice(0, i), image.slice(i + 1)] : [image, 'latest'];
}
function podSpecs(objs) {
    return objs.filter((o) => o.spec?.template?.spec).map((o) => o.spec.template.spec);
}
function allContainers(objs) {
    return podSpecs(objs).flatMap((s) => [...(s.initContainers ?? []), ...(s.containers ?? [])]);
}

// ------------------------------------------------- schema: kubernetes-models
function modelPath(apiVersion, kind) {
    const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : [null, apiVersion];
    return group ? `kubernetes-models/${group}/${version}/${kind}` : `kubernetes-models/${version}/${kind}`;
}

// Field names from the models' .d.ts files: interface I<Name> { "field"?: TYPE; ... }
const declCache = new Map();
function parseDecl(file) {
    if (declCache.has(file)) return declCache.get(file);
    const src = fs.readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '');
    const imports = {};
    for (const m of src.matchAll(/import \{ (\w+) \} from "([^"]+)";/g)) imports[m[1]] = m[2];
    const m = src.match(/export interface I\w+(?: extends [\w, ]+)? \{/);
    let decl = null;
    if (m) {
        // the interface body, up to its closing brace
        let depth = 0, i = m.index + m[0].length - 1, start = i + 1;
        for (; i < src.length; i++) {
            if (src[i] === '{') depth++;
            else if (src[i] === '}' && --depth === 0) break;
        }
        const body = src.slice(start, i);
        const fields = {};
        // top-level entries: "name"?: TYPE;  (TYPE may hold braces)
        let d = 0, cur = '';
        for (const ch of body) {
            if (ch === '{' || ch === '<') d++;
            if (ch === '}' || ch === '>') d--;
            if (ch === ';' && d === 0) {
                const e = cur.trim().match(/^"([^"]+)"\??:\s*([\s\S]+)$/);
                if (e) fields[e[1]] = e[2].trim();
                cur = '';
            } else cur += ch;
        }
        decl = { fields, imports, file };
    }
    declCache.set(file, decl);
    return decl;
}

function resolveImport(fromFile, spec) {
    let p;
    if (spec.startsWith('.')) p = path.resolve(path.dirname(fromFile), spec);
    else if (spec.startsWith('@kubernetes-models/apimachinery/')) p = path.join(apimachineryDir, spec.slice(32));
    else if (spec.startsWith('kubernetes-models/')) p = path.join(modelsDir, spec.slice(18));
    else return null;
    return p + '.d.ts';
}

// Walks value against TYPE (a .d.ts type expression); reports unknown fields.
function checkType(value, type, decl, where) {
    type = type.trim();
    if (value == null) return;
    let m;
    if ((m = type.match(/^Array<([\s\S]+)>$/))) {
        if (Array.isArray(value)) value.forEach((v, i) => checkType(v, m[1], decl, `${where}[${i}]`));
        return;
    }
    if ((m = type.match(/^\{\s*\[key: string\]:\s*([\s\S]+?);?\s*\}$/))) {
        if (typeof value === 'object') for (const [k, v] of Object.entries(value)) checkType(v, m[1], decl, `${where}.${k}`);
        return;
    }
    if (/^I\w+$/.test(type) && decl.imports[type]) {
        const file = resolveImport(decl.file, decl.imports[type]);
        const sub = file && fs.existsSync(file) ? parseDecl(file) : null;
        if (sub) checkObject(value, sub, where);
    }
    // primitives, string-literal unions, IntOrString/Quantity aliases: kubernetes-models checked them
}

function checkObject(value, decl, where) {
    if (typeof value !== 'object' || Array.isArray(value)) return;
    for (const [k, v] of Object.entries(value)) {
        if (k === '__file') continue;
        if (!(k in decl.fields)) {
            const near = Object.keys(decl.fields).filter((f) => f.toLowerCase().startsWith(k.toLowerCase().slice(0, 6)));
            fail(where, `unknown field '${k}'${near.length ? ` (did you mean ${near.join(', ')}?)` : ''}`);
        } else checkType(v, decl.fields[k], decl, `${where}.${k}`);
    }
}

async function validateObject(o) {
    const where = `${o.__file ?? '?'}: ${idOf(o)}`;
    const mp = modelPath(o.apiVersion ?? '', o.kind ?? '');
    let Model;
    try {
        Model = (await import(mp))[o.kind];
    } catch {
        fail(where, `no Kubernetes schema for ${o.apiVersion} ${o.kind}`);
        return;
    }
    const data = structuredClone(o);
    delete data.__file;
    try {
        new Model(data).validate();
    } catch (e) {
        fail(where, `schema: ${e.message}`);
    }
    const declFile = require.resolve(mp).replace(/\.js$/, '.d.ts');
    checkObject(data, parseDecl(declFile), where);
}

// ------------------------------------------------------ the project's rules
const durSeconds = (s) => {
    const m = String(s).match(/^(\d+)(ms|s|m|min|h)?$/);
    if (!m) return NaN;
    const n = Number(m[1]);
    return { ms: n / 1000, s: n, m: n * 60, min: n * 60, h: n * 3600, undefined: n / 1000 }[m[2]];
};
function flag(argsList, name) {
    for (let i = 0; i < argsList.length; i++) {
        if (argsList[i].startsWith(`${name}=`)) return argsList[i].slice(name.length + 1);
        if (argsList[i] === name) return argsList[i + 1];
    }
    return undefined;
}

function checkRules(objs, variant) {
    const where = `rules (${variant})`;
    const ns = objs.find((o) => o.kind === 'Namespace');
    if (objs[0]?.kind !== 'Namespace') fail(where, 'the Namespace must come first');
    if (ns?.metadata?.labels?.['pod-security.kubernetes.io/enforce'] !== 'privileged')
        fail(where, 'the namespace must enforce Pod Security "privileged" (hostNetwork)');
    const ds = objs.find((o) => o.kind === 'DaemonSet' && o.metadata.name === 'ringway');
    if (!ds) return fail(where, 'no DaemonSet ringway');
    const spec = ds.spec.template.spec;
    const c = spec.containers.find((x) => x.name === 'ringway');
    if (!c) return fail(where, 'no container ringway');
    if (spec.hostNetwork !== true) fail(where, 'hostNetwork must be true');
    if (spec.dnsPolicy !== 'ClusterFirstWithHostNet') fail(where, 'dnsPolicy must be ClusterFirstWithHostNet');
    if (spec.automountServiceAccountToken !== false) fail(where, 'pod automountServiceAccountToken must be false');
    const sa = objs.find((o) => o.kind === 'ServiceAccount' && o.metadata.name === spec.serviceAccountName);
    if (!sa || sa.automountServiceAccountToken !== false) fail(where, 'needs its own ServiceAccount with automountServiceAccountToken false');
    const a = c.args ?? [];
    const delay = durSeconds(flag(a, '--shutdown-delay') ?? 'x');
    const drain = durSeconds(flag(a, '--drain-timeout') ?? 'x');
    if (Number.isNaN(delay) || Number.isNaN(drain)) fail(where, 'args need --shutdown-delay and --drain-timeout');
    else if (!(spec.terminationGracePeriodSeconds >= delay + drain + 5))
        fail(where, `terminationGracePeriodSeconds ${spec.terminationGracePeriodSeconds} < shutdown delay ${delay} + drain timeout ${drain} + 5 s margin`);
    if (!a.includes('--watch-config')) fail(where, 'args need --watch-config (ConfigMap edits)');
    if (c.lifecycle?.preStop?.exec) fail(where, 'preStop exec: the image has no shell or sleep');
    if (c.readinessProbe?.httpGet?.path !== '/ready') fail(where, 'readiness must probe /ready');
    if (c.livenessProbe?.httpGet?.path !== '/health') fail(where, 'liveness must probe /health');
    const lim = c.resources?.limits?.cpu, req = c.resources?.requests?.cpu;
    if (!/^\d+$/.test(String(lim))) fail(where, `CPU limit ${lim} must be a whole number (workers: auto follows it)`);
    if (lim === undefined || req === undefined || !c.resources?.limits?.memory) fail(where, 'needs CPU and memory requests and limits');
    const sc = c.securityContext ?? {};
    if (sc.allowPrivilegeEscalation !== false) fail(where, 'allowPrivilegeEscalation must be false');
    if (sc.readOnlyRootFilesystem !== true) fail(where, 'readOnlyRootFilesystem must be true');
    if (sc.runAsNonRoot !== true || sc.runAsUser !== 65532 || sc.runAsGroup !== 65532) fail(where, 'must run as 65532:65532, non-root');
    if (JSON.stringify(sc.capabilities?.drop) !== '["ALL"]') fail(where, 'capabilities must drop ALL');
    const low = (c.ports ?? []).some((p) => p.containerPort < 1024);
    const nbs = (sc.capabilities?.add ?? []).includes('NET_BIND_SERVICE');
    if (low !== nbs) fail(where, 'NET_BIND_SERVICE exactly when a port < 1024 is used');
    const want = variant === 'default' ? { type: 'Localhost', localhostProfile: 'ringway.json' } : { type: 'RuntimeDefault' };
    if (JSON.stringify(sc.seccompProfile) !== JSON.stringify(want)) fail(where, `seccompProfile ${JSON.stringify(sc.seccompProfile)}, expected ${JSON.stringify(want)}`);
    if (c.image !== 'ringway:0.1.0' || c.imagePullPolicy !== 'IfNotPresent') fail(where, 'image ringway:0.1.0 with IfNotPresent');
    for (const v of spec.volumes ?? [])
        if (v.secret && v.secret.optional !== true) fail(where, `Secret volume ${v.name} must be optional`);
    const ru = ds.spec.updateStrategy?.rollingUpdate ?? {};
    const hostPorts = (c.ports ?? []).length > 0;
    if (hostPorts && ru.maxSurge && ru.maxSurge !== 0) fail(where, 'maxSurge with declared ports (host ports under hostNetwork) leaves the surge pod Pending');
    const installer = objs.some((o) => o.metadata.name === 'ringway-seccomp-installer');
    if ((variant === 'default') !== installer) fail(where, 'the seccomp installer belongs to the Localhost variant only');
    const cm = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'ringway-config');
    const cfg = cm?.data?.['ringway.yaml'];
    if (!cfg) return fail(where, 'no ConfigMap ringway-config with ringway.yaml');
    const parsed = yaml.load(cfg);
    if (!String(parsed.admin?.address ?? parsed.admin ?? '').startsWith('127.')) fail(where, 'admin must stay on loopback');
    if (!parsed.metrics_listen) fail(where, 'metrics_listen is needed for Prometheus and the liveness probe');
    const mport = Number(String(parsed.metrics_listen).split(':').pop());
    if (c.livenessProbe?.httpGet?.port !== mport) fail(where, 'liveness must probe metrics_listen (its /health sees stuck workers)');
    const mountDir = (c.volumeMounts ?? []).find((m) => m.name === (spec.volumes ?? []).find((v) => v.configMap?.name === 'ringway-config')?.name)?.mountPath;
    if (flag(a, '--config') !== `${mountDir}/ringway.yaml`) fail(where, `--config ${flag(a, '--config')} is not the ConfigMap's mount ${mountDir}/ringway.yaml`);
    return cfg;
}

// ------------------------------------------------------------------ seccomp
// ARM-only names (arch/arm syscall table and __ARM_NR_ private calls) that the
// x86-64 and generic headers do not list.
const ARM_ONLY = ['arm_fadvise64_64', 'arm_sync_file_range', 'breakpoint', 'cacheflush', 'set_tls', 'send', 'recv'];
function knownSyscalls() {
    const files = ['/usr/include/asm-generic/unistd.h'];
    for (const d of fs.readdirSync('/usr/include')) {
        const asm = path.join('/usr/include', d, 'asm');
        if (d.endsWith('-linux-gnu') && fs.existsSync(asm))
            for (const f of fs.readdirSync(asm)) if (/^unistd(_\w+)?\.h$/.test(f)) files.push(path.join(asm, f));
    }
    const names = new Set(ARM_ONLY);
    for (const f of files.filter((x) => fs.existsSync(x)))
        for (const m of fs.readFileSync(f, 'utf8').matchAll(/#define __NR(?:3264)?_(\w+)\s/g)) names.add(m[1]);
    return names;
}
const OCI_SECCOMP_KEYS = new Set(['defaultAction', 'defaultErrnoRet', 'architectures', 'flags', 'listenerPath', 'listenerMetadata', 'syscalls']);
const OCI_SYSCALL_KEYS = new Set(['names', 'action', 'errnoRet', 'args']);
const ACTIONS = new Set(['SCMP_ACT_KILL', 'SCMP_ACT_KILL_PROCESS', 'SCMP_ACT_KILL_THREAD', 'SCMP_ACT_TRAP', 'SCMP_ACT_ERRNO',
    'SCMP_ACT_TRACE', 'SCMP_ACT_ALLOW', 'SCMP_ACT_LOG', 'SCMP_ACT_NOTIFY']);
const OPS = new Set(['SCMP_CMP_NE', 'SCMP_CMP_LT', 'SCMP_CMP_LE', 'SCMP_CMP_EQ', 'SCMP_CMP_GE', 'SCMP_CMP_GT', 'SCMP_CMP_MASKED_EQ']);
// What ringway calls (directly, or through glibc, liburing, c-ares, liburcu).
const RINGWAY_NEEDS = ['io_uring_setup', 'io_uring_enter', 'io_uring_register', 'epoll_create1', 'epoll_ctl', 'epoll_pwait',
    'epoll_wait', 'eventfd2', 'inotify_init1', 'inotify_add_watch', 'inotify_rm_watch', 'accept4', 'socket', 'bind', 'listen',
    'connect', 'setsockopt', 'getsockopt', 'getsockname', 'getpeername', 'sendmsg', 'recvmsg', 'sendto', 'recvfrom', 'read',
    'write', 'writev', 'readv', 'close', 'shutdown', 'clone', 'futex', 'sched_setaffinity', 'sched_getaffinity', 'prctl',
    'membarrier', 'rseq', 'set_robust_list', 'mmap', 'munmap', 'mprotect', 'madvise', 'getrandom', 'timerfd_create',
    'timerfd_settime', 'clock_gettime', 'clock_nanosleep', 'nanosleep', 'openat', 'newfstatat', 'statx', 'fstat', 'lseek',
    'pipe2', 'poll', 'ppoll', 'rt_sigaction', 'rt_sigprocmask', 'rt_sigtimedwait', 'signalfd4', 'prlimit64', 'getrlimit',
    'setrlimit', 'getpid', 'gettid', 'tgkill', 'exit', 'exit_group', 'fcntl', 'ioctl', 'uname', 'sysinfo', 'brk', 'mremap'];
function checkSeccomp(file) {
    const where = path.relative(path.dirname(k8sDir), file);
    let p;
    try {
        p = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (e) {
        return fail(where, `not JSON: ${e.message}`);
    }
    for (const k of Object.keys(p)) if (!OCI_SECCOMP_KEYS.has(k)) fail(where, `'${k}' is not an OCI seccomp field (Docker-only fields are ignored by containerd)`);
    if (p.defaultAction !== 'SCMP_ACT_ERRNO') fail(where, 'defaultAction must be SCMP_ACT_ERRNO (an allow list)');
    for (const a of p.architectures ?? []) if (!/^SCMP_ARCH_[A-Z0-9_]+$/.test(a)) fail(where, `architecture ${a}`);
    if (!(p.architectures ?? []).includes('SCMP_ARCH_X86_64')) fail(where, 'architectures lack SCMP_ARCH_X86_64');
    const known = knownSyscalls();
    if (known.size < 300) fail(where, `only ${known.size} syscall names found in the kernel headers (linux-libc-dev)`);
    const allowed = new Set();
    (p.syscalls ?? []).forEach((r, i) => {
        for (const k of Object.keys(r)) if (!OCI_SYSCALL_KEYS.has(k)) fail(where, `syscalls[${i}]: '${k}' is not an OCI field`);
        if (!ACTIONS.has(r.action)) fail(where, `syscalls[${i}]: action ${r.action}`);
        for (const a of r.args ?? [])
            if (!OPS.has(a.op) || !Number.isInteger(a.index) || !Number.isInteger(a.value)) fail(where, `syscalls[${i}]: bad arg ${JSON.stringify(a)}`);
        for (const n of r.names ?? []) {
            if (!known.has(n)) fail(where, `syscalls[${i}]: unknown syscall '${n}'`);
            if (r.action === 'SCMP_ACT_ALLOW' && !(r.args ?? []).length) allowed.add(n);
        }
    });
    const conditional = new Set((p.syscalls ?? []).filter((r) => r.action === 'SCMP_ACT_ALLOW').flatMap((r) => r.names));
    for (const n of RINGWAY_NEEDS) if (!allowed.has(n) && !conditional.has(n)) fail(where, `ringway needs '${n}', not allowed`);
    for (const n of ['io_uring_setup', 'io_uring_enter', 'io_uring_register']) if (!allowed.has(n)) fail(where, `${n} must be allowed`);
    // never without CAP_SYS_ADMIN in the runtime default: must stay refused
    for (const n of ['mount', 'unshare', 'setns', 'bpf', 'perf_event_open', 'kexec_load', 'init_module'])
        if (allowed.has(n)) fail(where, `'${n}' is allowed; the runtime default refuses it without capabilities`);
    return p;
}

// --------------------------------------------------------------------- main
const t0 = Date.now();
const variants = { default: render(k8sDir) };
variants['runtime-default'] = render(k8sDir, ['components/runtime-default']);
for (const [name, objs] of Object.entries(variants)) {
    for (const o of objs) await validateObject(o);
    const cfg = checkRules(objs, name);
    if (name === 'default' && cfg) {
        if (!ringway) fail('check-config', 'no ringway binary (RW_BINARY or --ringway)');
        else {
            const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rw-k8s-'));
            const f = path.join(tmp, 'ringway.yaml');
            fs.writeFileSync(f, cfg);
            const r = spawnSync(ringway, ['--check-config', '--config', f], { encoding: 'utf8', timeout: 20000 });
            if (r.status !== 0) fail('configmap.yaml: ringway.yaml', `ringway --check-config exited ${r.status}: ${(r.stderr || r.error || '').toString().trim()}`);
            else info(`check-config: ${r.stdout.trim().split('\n')[0]}`);
            fs.rmSync(tmp, { recursive: true });
        }
    }
    info(`${name}: ${objs.length} objects (${objs.map((o) => o.kind).join(', ')})`);
}
checkSeccomp(path.join(k8sDir, 'seccomp/ringway.json'));
crossCheckKubectl();
const optDir = path.join(k8sDir, 'optional');
if (fs.existsSync(optDir))
    for (const f of fs.readdirSync(optDir).filter((x) => x.endsWith('.yaml')))
        for (const o of loadDocs(path.join(optDir, f))) {
            o.__file = `optional/${f}`;
            if (o.apiVersion?.startsWith('monitoring.coreos.com/')) checkPodMonitor(o, variants.default);
            else await validateObject(o);
        }

// PodMonitor: no model in kubernetes-models; the fields that matter, strictly.
function checkPodMonitor(o, objs) {
    const where = `${o.__file}: ${idOf(o)}`;
    const allowTop = ['apiVersion', 'kind', 'metadata', 'spec', '__file'];
    for (const k of Object.keys(o)) if (!allowTop.includes(k)) fail(where, `unknown field '${k}'`);
    const allowSpec = ['selector', 'namespaceSelector', 'podMetricsEndpoints', 'jobLabel', 'podTargetLabels', 'sampleLimit'];
    for (const k of Object.keys(o.spec ?? {})) if (!allowSpec.includes(k)) fail(where, `unknown field 'spec.${k}'`);
    const allowEp = ['port', 'portNumber', 'path', 'interval', 'scrapeTimeout', 'scheme', 'relabelings', 'metricRelabelings', 'honorLabels'];
    for (const ep of o.spec?.podMetricsEndpoints ?? [])
        for (const k of Object.keys(ep)) if (!allowEp.includes(k)) fail(where, `unknown field 'podMetricsEndpoints[].${k}'`);
    const ds = objs.find((x) => x.kind === 'DaemonSet' && x.metadata.name === 'ringway');
    const labels = ds?.spec.template.metadata.labels ?? {};
    for (const [k, v] of Object.entries(o.spec?.selector?.matchLabels ?? {})) if (labels[k] !== v) fail(where, `selector ${k}=${v} matches no ringway pod`);
    const ports = ds?.spec.template.spec.containers[0].ports?.map((p) => p.name) ?? [];
    for (const ep of o.spec?.podMetricsEndpoints ?? []) if (ep.port && !ports.includes(ep.port)) fail(where, `port ${ep.port} is not a container port name`);
}

// The renderer above against the real kustomize (kubectl kustomize, v4 or
// later), where one is installed: the same objects, field for field.
function crossCheckKubectl() {
    const v = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8', timeout: 10000 });
    const kv = (v.stdout ?? '').match(/Kustomize Version: v(\d+)/);
    if (v.status !== 0 || !kv || Number(kv[1]) < 4) {
        info('kubectl kustomize: not installed (or kustomize < v4); cross-check skipped');
        return;
    }
    const tmp = fs.mkdtempSync(path.join(path.dirname(k8sDir), '.rw-k8s-overlay-'));
    try {
        const rel = path.relative(tmp, k8sDir);
        fs.writeFileSync(path.join(tmp, 'kustomization.yaml'),
            `resources: [${rel}]\ncomponents: [${rel}/components/runtime-default]\n`);
        for (const [name, dir] of [['default', k8sDir], ['runtime-default', tmp]]) {
            const r = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8', timeout: 30000 });
            if (r.status !== 0) {
                fail(`kubectl kustomize (${name})`, r.stderr.trim());
                continue;
            }
            const norm = (objs) => objs.map((o) => { const c = structuredClone(o); delete c.__file; return JSON.stringify(sortKeys(c)); }).sort();
            const theirs = norm(yaml.loadAll(r.stdout).filter(Boolean)), ours = norm(variants[name]);
            if (JSON.stringify(theirs) !== JSON.stringify(ours))
                fail(`kubectl kustomize (${name})`, 'renders differently from validate.mjs: ' + theirs.filter((x) => !ours.includes(x)).map((x) => x.slice(0, 120)).join(' | '));
            else info(`kubectl kustomize (${name}): same ${theirs.length} objects (kustomize v${kv[1]})`);
        }
    } finally {
        fs.rmSync(tmp, { recursive: true });
    }
}
function sortKeys(x) {
    if (Array.isArray(x)) return x.map(sortKeys);
    if (x && typeof x === 'object') return Object.fromEntries(Object.keys(x).sort().map((k) => [k, sortKeys(x[k])]));
    return x;
}

for (const e of errors) console.log(`FAIL ${e}`);
const ok = errors.length === 0;
console.log(ok ? `k8s: all checks passed (${Date.now() - t0} ms)` : `k8s: ${errors.length} check(s) failed`);
process.exit(ok !== expectFail ? 0 : 1);
