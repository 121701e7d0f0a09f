// Validates Kubernetes objects offline against the Kubernetes OpenAPI schemas, as packaged by
// kubernetes-models (one validator per kind, generated from the schemas: types, required
// fields, enums, formats), and strictly: TypeScript's compiler checks each object against the
// same schemas' generated interfaces, which finds the fields the schemas do not know (a typo in
// readOnlyRootFilesystem validates otherwise).
//   node tests/helm/validate.mjs NODE_DIR OBJECTS.json
// NODE_DIR holds node_modules with kubernetes-models and typescript (mk/helm.sh installs them).
// OBJECTS.json is an array of objects. Prints a JSON array of {index, kind, name, error}; exits 0
// whether or not there are errors (the caller asserts), 2 when it cannot validate at all.
import { createRequire } from "node:module";
import { existsSync, readFileSync, writeFileSync, mkdtempSync, rmSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [nodeDir, objectsFile] = process.argv.slice(2);
if (!nodeDir || !objectsFile) {
    console.error("usage: validate.mjs NODE_DIR OBJECTS.json");
    process.exit(2);
}
const models = path.join(nodeDir, "node_modules", "kubernetes-models");
const objects = JSON.parse(readFileSync(objectsFile, "utf8"));
const errors = [];

// "apps/v1" -> "apps/v1", "v1" -> "v1": the package's folders are named after the API group.
function modulePath(obj) {
    const [group, version] = obj.apiVersion.includes("/") ? obj.apiVersion.split("/") : [null, obj.apiVersion];
    return path.join(models, ...(group ? [group] : []), version, `${obj.kind}.js`);
}

const typed = [];
for (const [index, obj] of objects.entries()) {
    const where = { index, kind: obj?.kind, name: obj?.metadata?.name };
    if (!obj || typeof obj.apiVersion !== "string" || typeof obj.kind !== "string") {
        errors.push({ ...where, error: "no apiVersion or kind" });
        continue;
    }
    const file = modulePath(obj);
    if (!existsSync(file)) {
        errors.push({ ...where, error: `no schema for ${obj.apiVersion} ${obj.kind}` });
        continue;
    }
    const mod = await import(pathToFileURL(file).href);
    const Model = mod[obj.kind];
    try {
        new Model(obj).validate();
    } catch (e) {
        errors.push({ ...where, error: String(e.message ?? e) });
    }
    typed.push({ index, file, obj });
}

// One object per line, so that a diagnostic's line is its object.
const require = createRequire(path.join(nodeDir, "package.json"));
const ts = require("typescript");
const dir = mkdtempSync(path.join(nodeDir, "check-"));
try {
    const lines = typed.map(({ index, file, obj }) => {
        return `import type { I${obj.kind} as T${index} } from ${JSON.stringify(file)}; ` +
            `export const o${index}: T${index} = ${JSON.stringify(obj)};`;
    });
    const src = path.join(dir, "objects.mts");
    writeFileSync(src, lines.join("\n") + "\n");
    const program = ts.createProgram([src], {
        strict: true, noEmit: true, skipLibCheck: true, types: [],
        module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext,
    });
    for (const d of ts.getPreEmitDiagnostics(program)) {
        const text = ts.flattenDiagnosticMessageText(d.messageText, " ");
        if (!d.file || path.resolve(d.file.fileName) !== path.resolve(src)) {
            errors.push({ index: -1, error: `typescript: ${text}` });
            continue;
        }
        const line = d.file.getLineAndCharacterOfPosition(d.start).line;
        const { index, obj } = typed[line];
        errors.push({ index, kind: obj.kind, name: obj.metadata?.name, error: text });
    }
} finally {
    rmSync(dir, { recursive: true, force: true });
}
console.log(JSON.stringify(errors));
