// The SQL console: any read-only query against the agent. Errors are
// shown exactly as the API words them; nothing is rephrased.

import * as fmt from './format.js';
import { renderTable } from './table.js';

/** Rows drawn at most; the API itself caps (and flags) what it returns. */
const MAX_RENDERED_ROWS = 1000;

export class SqlConsole {
  constructor({ runQuery }) {
    this.runQuery = runQuery;
    this.editor = document.getElementById('console-sql');
    this.runButton = document.getElementById('console-run');
    this.status = document.getElementById('console-status');
    this.error = document.getElementById('console-error');
    this.result = document.getElementById('console-result');
    this.tablesEl = document.getElementById('console-tables');
    this.runButton.addEventListener('click', () => this.run());
    this.editor.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        this.run();
      }
    });
  }

  /** Puts `sql` in the editor, scrolls to it and runs it. */
  load(sql) {
    this.editor.value = sql;
    this.editor.scrollIntoView({ behavior: 'smooth', block: 'center' });
    this.editor.focus();
    this.run();
  }

  showTables(names) {
    this.tablesEl.textContent = names.length ? names.join(', ') : '—';
  }

  async run() {
    const sql = this.editor.value.trim();
    if (!sql) return;
    this.runButton.disabled = true;
    this.status.textContent = 'Running…';
    const started = performance.now();
    try {
      const result = await this.runQuery(sql);
      const ms = Math.round(performance.now() - started);
      this.error.hidden = true;
      this.error.textContent = '';
      const shown = result.rows.slice(0, MAX_RENDERED_ROWS);
      const columns = result.columns.map((c, i) => ({
        label: c.name,
        value: (row) => cellText(row[i]),
        numeric: /Int|Float|Decimal/.test(c.type),
        title: () => c.type,
      }));
      renderTable(this.result, columns, shown, { empty: 'The query returned no rows.' });
      const notes = [`${fmt.count(result.rows.length)} rows`, `${ms} ms`];
      if (result.truncated) notes.push('truncated by the agent’s row cap');
      if (result.rows.length > shown.length) notes.push(`first ${fmt.count(shown.length)} shown`);
      this.status.textContent = notes.join(' · ');
    } catch (err) {
      this.status.textContent = err.status ? `HTTP ${err.status}` : 'failed';
      this.error.hidden = false;
      this.error.textContent = err.message;
      this.result.replaceChildren();
    } finally {
      this.runButton.disabled = false;
    }
  }
}

function cellText(value) {
  if (value == null) return 'NULL';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}
