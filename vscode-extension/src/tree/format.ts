/** Formatting helpers for the chat list (pure). */

export function relativeTime(ms: number, now: number = Date.now()): string {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return "just now";
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min ago`;
  const h = Math.round(m / 60);
  if (h < 24) return `${h} h ago`;
  const d = Math.round(h / 24);
  if (d < 30) return `${d} d ago`;
  return new Date(ms).toISOString().slice(0, 10);
}

/** A search snippet without its « » match marks, on one line. */
export function plainSnippet(snippet: string): string {
  return snippet.replace(/[«»]/g, "").replace(/\s+/g, " ").trim();
}
