// bareprop's web app: three tabs chosen by the URL hash (#draw, #train, #runs), one poll of the run
// list that feeds all three, and the header's job counter. No element's id is a tab's name: the
// browser would scroll that element under the sticky header. API paths are relative: the page
// lives under this server's own path (/s/<id>/), where its cookie is sent.
import { initDraw, updateModels } from './draw.js';
import { initRunsTable, updateRunsTable } from './runs.js';
import { initTrain, updateRuns } from './train.js';
import { $, api, el } from './util.js';

const PAGES = ['draw', 'train', 'runs'];
const POLL_MS = 2000;
let pollTimer = null;
let polling = false, pollAgain = false;
let shown = null;               // the tab on screen

function route() {
  const page = PAGES.includes(location.hash.slice(1)) ? location.hash.slice(1) : 'draw';
  if (shown !== null && shown !== page) window.scrollTo(0, 0);     // a tab opens at its top
  shown = page;
  for (const p of PAGES) {
    $(`page-${p}`).hidden = p !== page;
    const tab = $(`tab-${p}`);
    tab.classList.toggle('active', p === page);
    tab.setAttribute('aria-selected', String(p === page));
  }
  document.title = `bareprop · ${page[0].toUpperCase()}${page.slice(1)}`;
  refresh();
}

function banner(message) {
  const b = $('banner');
  b.textContent = message || '';
  b.classList.toggle('hidden', !message);
}

/** Fetch the run list and the job counts once, and hand them to every page. */
async function refresh() {
  // one poll loop: a call while a fetch is out asks for another round when it is back
  if (polling) { pollAgain = true; return; }
  polling = true;
  clearTimeout(pollTimer);
  let answer = null;
  try {
    answer = await Promise.all([api('api/runs'), api('api/jobs')]);
    banner('');
  } catch (err) {
    banner(err.status === 403
      ? 'Not signed in: open the address that `bareprop serve` printed (it carries the access token).'
      : `Cannot reach the bareprop server: ${err.message}`);
  }
  try {
    // outside the catch above: a bug in a page is an uncaught error, not "cannot reach the server"
    if (answer) {
      const [{ runs, sweeps }, jobs] = answer;
      updateModels(runs);
      updateRuns(runs);
      updateRunsTable(runs, sweeps || []);
      showJobs(jobs);
    }
  } finally {
    polling = false;
    if (pollAgain) { pollAgain = false; refresh(); } else pollTimer = setTimeout(refresh, document.hidden ? 4 * POLL_MS : POLL_MS);
  }
}

function showJobs(jobs) {
  const running = (jobs.running || []).length, queued = (jobs.queued || []).length;
  $('jobs').replaceChildren(
    el('span', { class: `dot${running ? ' on' : ''}` }),
    running ? `${running} training` : 'idle',
    queued ? ` · ${queued} queued` : '',
    el('span', { class: 'muted' }, ` · max ${jobs.max_jobs}`));
}

async function main() {
  initDraw();
  initRunsTable();
  try {
    initTrain(await api('api/presets'), refresh);
  } catch (err) {
    banner(`Cannot load the presets: ${err.message}`);
  }
  window.addEventListener('hashchange', route);
  route();
}

main();
