// Plain HTML tables. Cells are always set with textContent: paths,
// headers and bodies come from captured traffic and must never be markup.

/**
 * @typedef Column
 * @property {string} label
 * @property {(row: object) => any} value   cell text
 * @property {boolean} [numeric]            right-aligned
 * @property {(row: object) => string} [className]
 * @property {(row: object) => string} [title]  hover text
 */

/**
 * Replaces `container`'s content with a table of `rows`.
 * @param {HTMLElement} container
 * @param {Column[]} columns
 * @param {object[]} rows
 * @param {{onClick?: (row) => void, isSelected?: (row) => boolean, empty?: string}} options
 */
export function renderTable(container, columns, rows, { onClick, isSelected, empty = 'No data in this window.' } = {}) {
  if (rows.length === 0) {
    const note = document.createElement('p');
    note.className = 'empty';
    note.textContent = empty;
    container.replaceChildren(note);
    return;
  }
  const table = document.createElement('table');
  const head = table.createTHead().insertRow();
  for (const column of columns) {
    const th = document.createElement('th');
    th.textContent = column.label;
    if (column.numeric) th.className = 'num';
    head.append(th);
  }
  const body = table.createTBody();
  for (const row of rows) {
    const tr = body.insertRow();
    for (const column of columns) {
      const td = tr.insertCell();
      const value = column.value(row);
      td.textContent = value == null ? '—' : String(value);
      const classes = [column.numeric ? 'num' : '', column.className?.(row) ?? ''].filter(Boolean);
      if (classes.length) td.className = classes.join(' ');
      const title = column.title?.(row);
      if (title) td.title = title;
    }
    if (onClick) {
      tr.classList.add('clickable');
      tr.tabIndex = 0;
      tr.addEventListener('click', () => onClick(row));
      tr.addEventListener('keydown', (event) => {
        if (event.key === 'Enter' || event.key === ' ') {
          event.preventDefault();
          onClick(row);
        }
      });
    }
    if (isSelected?.(row)) tr.classList.add('selected');
  }
  container.replaceChildren(table);
}
