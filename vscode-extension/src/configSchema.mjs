// Pure conversion of the server's settings JSON schema (pydantic, camelCase) into VS Code's
// contributes.configuration properties. Shared by scripts/gen-config.mjs and the unit tests.

/** Settings a workspace must not set for itself (VS Code ignores workspace values of these). */
export const APPLICATION_SCOPED = [
  /^openLlm\.presets\./,
  /^openLlm\.models\.acceptedLicenses$/,
  /^openLlm\.models\.allowUnverifiedDownloads$/,
  /^openLlm\.remote\./,
];


function resolve(schema, node) {
  if (node && node.$ref) {
    const name = node.$ref.replace(/^#\/\$defs\//, "");
    const target = schema.$defs?.[name];
    if (!target) throw new Error(`unresolved $ref ${node.$ref}`);
    return { ...target, ...node, $ref: undefined };
  }
  return node;
}

function variant(v) {
  const out = {};
  if (v.const !== undefined) {
    out.type = v.type ?? typeof v.const;
    out.enum = [v.const];
  } else {
    for (const key of ["type", "enum", "minimum", "maximum", "items"]) {
      if (v[key] !== undefined) out[key] = v[key];
    }
  }
  return out;
}

function leaf(node, key, defaultValue) {
  const prop = {};
  if (node.anyOf) {
    const variants = node.anyOf.map(variant);
    prop.type = [...new Set(variants.map((v) => v.type))];
    prop.anyOf = variants;
  } else {
    for (const k of ["type", "enum", "minimum", "maximum", "items"]) {
      if (node[k] !== undefined) prop[k] = node[k];
    }
  }
  prop.default = defaultValue !== undefined ? defaultValue : node.default;
  if (node.description) prop.markdownDescription = node.description;
  if (APPLICATION_SCOPED.some((re) => re.test(key))) {
    prop.scope = "application";
    prop.markdownDescription =
      (prop.markdownDescription ?? "") + " (User setting only: a workspace cannot set it.)";
  }
  return prop;
}

/**
 * Flatten the schema into `{"openLlm.engine.threads": {...}}`, ordered as in the schema.
 * `defaults` is the fully defaulted settings object (factories called), which wins over the
 * schema's `default` so list defaults are exact.
 */
export function toConfiguration(schema, defaults, prefix = "openLlm") {
  const properties = {};
  let order = 0;
  const walk = (node, path, values) => {
    const resolved = resolve(schema, node);
    for (const [name, child] of Object.entries(resolved.properties ?? {})) {
      const sub = resolve(schema, child);
      const key = `${path}.${name}`;
      const value = values?.[name];
      if (sub.type === "object" && sub.properties) {
        walk(sub, key, value);
      } else {
        properties[key] = { ...leaf(sub, key, value), order: order++ };
      }
    }
  };
  walk(schema, prefix, defaults);
  return properties;
}
