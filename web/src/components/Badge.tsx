import type { Badge as BadgeT, Tone } from "../format";

export function Badge({ badge, testId }: { badge: BadgeT; testId?: string }) {
  return (
    <span className={`badge tone-${badge.tone}`} title={badge.detail} data-testid={testId}>
      <span className="dot" aria-hidden="true" />
      {badge.label}
    </span>
  );
}

export function Pill({ tone, children }: { tone: Tone; children: React.ReactNode }) {
  return <span className={`pill tone-${tone}`}>{children}</span>;
}
