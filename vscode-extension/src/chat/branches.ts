/** Branch helpers (pure). */

/** The ids of a message's siblings (same parent), in creation order, from a JSON export. */
export function siblingsOf(messages: { id: string; parentId: string | null }[], messageId: string): string[] {
  const target = messages.find((m) => m.id === messageId);
  if (!target) return [messageId];
  return messages.filter((m) => m.parentId === target.parentId).map((m) => m.id);
}
