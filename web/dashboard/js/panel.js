// A dashboard panel's chrome: the "SQL" toggle that shows the queries the
// panel ran (copyable, or sent to the console), and its error line.

/**
 * @param {HTMLElement} root  element holding .sql-toggle, .panel-sql, .panel-error
 * @param {{openInConsole?: (sql: string) => void}} options
 */
export class Panel {
  constructor(root, { openInConsole } = {}) {
    this.root = root;
    this.sqlBox = root.querySelector('.panel-sql');
    this.errorBox = root.querySelector('.panel-error');
    this.toggle = root.querySelector('.sql-toggle');
    this.openInConsole = openInConsole;
    this.queries = [];
    this.toggle?.addEventListener('click', () => {
      const open = this.sqlBox.hidden;
      this.sqlBox.hidden = !open;
      this.toggle.setAttribute('aria-expanded', String(open));
      if (open) this.renderSql();
    });
  }

  /** Records the queries of the latest refresh: [{title, sql}]. */
  setQueries(queries) {
    const changed = queries.length !== this.queries.length
      || queries.some((q, i) => q.sql !== this.queries[i].sql);
    this.queries = queries;
    // Rebuilding while open would reset a selection the user is making.
    if (changed && !this.sqlBox.hidden) this.renderSql();
  }

  renderSql() {
    this.sqlBox.replaceChildren(...this.queries.map((q) => this.queryBlock(q)));
  }

  queryBlock({ title, sql }) {
    const block = document.createElement('div');
    block.className = 'sql-block';
    const head = document.createElement('div');
    head.className = 'sql-block-head';
    const label = document.createElement('span');
    label.textContent = title;
    const copy = button('Copy', () => copyText(sql, copy));
    head.append(label, copy);
    if (this.openInConsole) {
      head.append(button('Open in console', () => this.openInConsole(sql)));
    }
    const pre = document.createElement('pre');
    pre.textContent = sql;
    block.append(head, pre);
    return block;
  }

  /** Shows an error (the API's text as is), or clears it with null. */
  setError(error) {
    if (!this.errorBox) return;
    this.errorBox.hidden = error == null;
    this.errorBox.textContent = error == null ? '' : String(error.message ?? error);
  }
}

function button(text, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'btn small';
  b.textContent = text;
  b.addEventListener('click', onClick);
  return b;
}

async function copyText(text, feedback) {
  const original = feedback.textContent;
  try {
    await navigator.clipboard.writeText(text);
    feedback.textContent = 'Copied';
  } catch {
    // No clipboard permission (e.g. plain http to a remote agent): leave
    // the text selected for Ctrl+C instead.
    const pre = feedback.closest('.sql-block')?.querySelector('pre');
    if (pre) window.getSelection()?.selectAllChildren(pre);
    feedback.textContent = 'Selected — press Ctrl+C';
  }
  setTimeout(() => { feedback.textContent = original; }, 1500);
}

/**
 * Runs the named queries together and records them on the panel. Resolves
 * to {name: result}; a failed query has no entry and the first failure is
 * shown on the panel, so what did succeed can still be drawn.
 */
export async function runPanelQueries(panel, runQuery, named) {
  panel.setQueries(named.filter((q) => q.sql).map(({ title, sql }) => ({ title, sql })));
  const results = await Promise.allSettled(named.map((q) => (q.sql ? runQuery(q.sql) : null)));
  const out = {};
  let firstError = null;
  results.forEach((r, i) => {
    if (r.status === 'fulfilled') out[named[i].name] = r.value;
    else firstError ??= r.reason;
  });
  panel.setError(firstError);
  return out;
}
