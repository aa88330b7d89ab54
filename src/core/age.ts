/** How long ago something was, as status and topology print it. */

/** "12 s", "4 min", "3 h", "2 d": `seconds` rounded to the unit that reads best. */
export function age(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172_800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86_400)} d`;
}
