// The README's command blocks, for the tests that run them as written: the shell lines between
// `<!-- <section>:start -->` and `<!-- <section>:end -->` (comments and fences left out).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const README = fileURLToPath(new URL('../../README.md', import.meta.url));

export function readmeCommands(section: string, readme = readFileSync(README, 'utf8')): string[] {
  const block = new RegExp(`<!-- ${section}:start -->([\\s\\S]*?)<!-- ${section}:end -->`).exec(readme)?.[1];
  if (block === undefined) throw new Error(`README.md has no <!-- ${section}:start --> … <!-- ${section}:end --> block`);
  return block.split('\n').map((line) => line.trim()).filter((line) => line && !line.startsWith('```') && !line.startsWith('#'));
}
