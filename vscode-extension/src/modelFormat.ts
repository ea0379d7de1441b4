/**
 * Reading the `openLlm/models/*` results for the picker (pure). Fields are read defensively:
 * the picker must not break when the server adds or renames one.
 */

export function formatBytes(bytes: number | undefined): string {
  if (!bytes || bytes <= 0) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value >= 10 || unit === 0 ? value.toFixed(0) : value.toFixed(1)} ${units[unit]}`;
}

/** A parameter count given either in billions (catalogue) or as a count (local files). */
export function formatParameters(p: number | undefined): string {
  if (!p || p <= 0) return "";
  const count = p < 10_000 ? p * 1e9 : p;
  return count >= 1e9 ? `${(count / 1e9).toFixed(count >= 1e10 ? 0 : 1)}B` : `${Math.round(count / 1e6)}M`;
}

export function fitLabel(fit: string): string {
  switch (fit.toLowerCase().replace(/[\s_]/g, "-")) {
    case "full-gpu":
    case "gpu":
      return "Full GPU";
    case "partial":
    case "partial-gpu":
      return "Partial GPU";
    case "cpu":
      return "CPU";
    case "wont-fit":
    case "won't-fit":
    case "none":
      return "Won't fit";
    default:
      return fit;
  }
}

type Obj = Record<string, unknown>;
const str = (v: unknown): string => (typeof v === "string" ? v : "");
const num = (v: unknown): number | undefined => (typeof v === "number" ? v : undefined);
const obj = (v: unknown): Obj => (v && typeof v === "object" ? (v as Obj) : {});

export interface LicenseView {
  name: string;
  key: string;
  url?: string;
  restricted: boolean;
  accepted: boolean;
}

export function licenseOf(v: unknown): LicenseView {
  if (typeof v === "string") return { name: v, key: v, restricted: false, accepted: true };
  const o = obj(v);
  return {
    name: str(o.name) || str(o.id) || str(o.key),
    key: str(o.key) || str(o.id),
    url: str(o.url) || undefined,
    restricted: o.restricted === true,
    accepted: o.accepted === true,
  };
}

export interface LocalModelView {
  spec: string;
  path: string;
  name: string;
  description: string;
  license: LicenseView;
  size?: number;
}

export interface CatalogView {
  id: string;
  name: string;
  repo: string;
  role: string;
  cached: boolean;
  license: LicenseView;
  description: string;
  notes: string;
}

/** `models/list`: the models on this machine and the catalogue. */
export function readModelList(result: unknown): { local: LocalModelView[]; catalog: CatalogView[]; acceptedLicenses: string[] } {
  const r = obj(result);
  const local = (Array.isArray(r.models) ? r.models : []).map((raw): LocalModelView => {
    const m = obj(raw);
    const license = licenseOf(m.license);
    return {
      spec: str(m.spec) || str(m.path),
      path: str(m.path),
      name: str(m.name) || str(m.file) || str(m.spec),
      size: num(m.size),
      license,
      description: [str(m.quant), formatParameters(num(m.parameters)), formatBytes(num(m.size)), license.name]
        .filter(Boolean)
        .join(" · "),
    };
  });
  const catalog = (Array.isArray(r.catalog) ? r.catalog : []).map((raw): CatalogView => {
    const m = obj(raw);
    const license = licenseOf(m.license);
    const files = Array.isArray(m.files) ? (m.files as Obj[]) : [];
    const sizes = files.map((f) => num(f.size) ?? 0).filter((s) => s > 0);
    const range = sizes.length
      ? `${formatBytes(Math.min(...sizes))}–${formatBytes(Math.max(...sizes))}`
      : "";
    return {
      id: str(m.id),
      name: str(m.name) || str(m.repo),
      repo: str(m.repo),
      role: str(m.role),
      cached: m.cached === true,
      license,
      description: [formatParameters(num(m.parameters)), range, license.name].filter(Boolean).join(" · "),
      notes: str(m.notes),
    };
  });
  const accepted = Array.isArray(r.acceptedLicenses) ? (r.acceptedLicenses as unknown[]).map(str) : [];
  return { local, catalog, acceptedLicenses: accepted };
}

/** `models/recommend`: per catalogue id (and role), the verdict and its reason. */
export function readRecommend(result: unknown): { verdicts: Map<string, { verdict: string; reason: string }>; picks: Set<string> } {
  const r = obj(result);
  const verdicts = new Map<string, { verdict: string; reason: string }>();
  for (const raw of Array.isArray(r.considered) ? r.considered : []) {
    const c = obj(raw);
    verdicts.set(`${str(c.role)}:${str(c.id)}`, { verdict: str(c.verdict), reason: str(c.reason) });
  }
  const picks = new Set<string>();
  for (const role of ["chat", "completion"]) {
    const pick = obj(r[role]);
    const model = obj(pick.model);
    if (str(model.id)) picks.add(`${role}:${str(model.id)}`);
  }
  return { verdicts, picks };
}

export interface FitRowView {
  quant: string;
  file: string;
  fit: string;
  size: string;
  reason: string;
  chosen: boolean;
}

/** A FitResult (`fit` of a `models/fit` answer, or the FitResult itself) as table rows. */
export function fitRows(result: unknown): { rows: FitRowView[]; message: string } {
  const r = obj(result);
  const fit = r.rows ? r : obj(r.fit);
  const rows = Array.isArray(fit.rows) ? (fit.rows as Obj[]) : [];
  return {
    message: str(fit.message),
    rows: rows.map((row) => ({
      quant: str(row.quant) || str(row.file),
      file: str(row.file),
      fit: str(row.label) || fitLabel(str(row.placement)),
      size: formatBytes(num(row.size)),
      reason: str(row.reason),
      chosen: row.chosen === true,
    })),
  };
}
