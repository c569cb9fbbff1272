// The tables of a GitHub-flavoured markdown text, read the way GFM reads them: a header row, a
// delimiter row (cells of dashes with optional colons), then body rows up to a line that is not a
// row; cells split at pipes that are not escaped (`\|`, also inside code spans). Enough to check
// that every row has the header's number of cells and that cells hold balanced code spans.

export interface GfmTable {
  /** 1-based line of the header row. */
  line: number;
  header: string[];
  rows: string[][];
}

/** The cells of a row: split at unescaped pipes, the optional outer pipes dropped, trimmed. */
export function cells(row: string): string[] {
  const out: string[] = [];
  let cur = "";
  for (let i = 0; i < row.length; i++) {
    const ch = row[i]!;
    if (ch === "\\" && row[i + 1] === "|") {
      cur += "\\|";
      i++;
    } else if (ch === "|") {
      out.push(cur);
      cur = "";
    } else cur += ch;
  }
  out.push(cur);
  const t = row.trim();
  if (t.startsWith("|")) out.shift();
  if (t.endsWith("|") && !t.endsWith("\\|")) out.pop();
  return out.map((c) => c.trim());
}

const DELIMITER = /^\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;

export function gfmTables(md: string): GfmTable[] {
  const lines = md.split("\n");
  const tables: GfmTable[] = [];
  for (let i = 0; i + 1 < lines.length; i++) {
    if (!lines[i]!.includes("|") || !DELIMITER.test(lines[i + 1]!)) continue;
    const header = cells(lines[i]!);
    const t: GfmTable = { line: i + 1, header, rows: [] };
    let j = i + 2;
    for (; j < lines.length && lines[j]!.trim() !== "" && lines[j]!.includes("|"); j++) t.rows.push(cells(lines[j]!));
    tables.push(t);
    i = j;
  }
  return tables;
}

/** Problems with the tables of `md`: rows whose cell count differs from the header's, unbalanced code spans. */
export function tableProblems(md: string): string[] {
  const problems: string[] = [];
  for (const t of gfmTables(md)) {
    const delimiterCells = cells(md.split("\n")[t.line]!).length;
    if (delimiterCells !== t.header.length) problems.push(`table at line ${t.line}: delimiter has ${delimiterCells} cells, header ${t.header.length}`);
    t.rows.forEach((r, k) => {
      if (r.length !== t.header.length) problems.push(`table at line ${t.line}, row ${k + 1}: ${r.length} cells, header has ${t.header.length}: ${JSON.stringify(r)}`);
      for (const c of r) if (!balancedCode(c)) problems.push(`table at line ${t.line}, row ${k + 1}: unbalanced code span in ${JSON.stringify(c)}`);
    });
  }
  return problems;
}

/**
 * Every code span is closed: outside one, a backslash escapes the next character (an escaped
 * backtick opens nothing) and a run of backticks opens a span; inside, only a run of the same
 * length closes it.
 */
function balancedCode(cell: string): boolean {
  let open: number | null = null;
  for (let i = 0; i < cell.length; ) {
    if (open === null && cell[i] === "\\") {
      i += 2;
      continue;
    }
    if (cell[i] !== "`") {
      i++;
      continue;
    }
    let n = 0;
    while (cell[i] === "`") {
      n++;
      i++;
    }
    if (open === null) open = n;
    else if (n === open) open = null;
  }
  return open === null;
}

/** `text` (one line) with each code span's content replaced by "C"s: what markdown reads as markup. */
export function withoutCodeSpans(text: string): string {
  let out = "";
  for (let i = 0; i < text.length; ) {
    if (text[i] === "\\") {
      out += text.slice(i, i + 2);
      i += 2;
      continue;
    }
    if (text[i] !== "`") {
      out += text[i++];
      continue;
    }
    let n = 0;
    while (text[i + n] === "`") n++;
    const fence = "`".repeat(n);
    let j = i + n;
    let close = -1;
    while ((j = text.indexOf(fence, j)) !== -1) {
      if (text[j + n] !== "`" && text[j - 1] !== "`") {
        close = j;
        break;
      }
      while (text[j] === "`") j++;
    }
    if (close === -1) {
      out += fence;
      i += n;
      continue;
    }
    out += "C".repeat(close + n - i);
    i = close + n;
  }
  return out;
}
