// The Draw page's "Why": a method selector and the chosen explanation of the prediction (bp.explain,
// computed by the server on the same 28x28 input) laid over what the network saw. The methods on offer
// come from the model's description (Grad-CAM only for a model with image-shaped layers).
import { unpack } from './inside.js';
import { $, el, legend, paintGrid, scaleFor, setText } from './util.js';

const LABELS = { saliency: 'saliency', 'input-x-gradient': 'input × gradient',
  'integrated-gradients': 'integrated gradients', gradcam: 'Grad-CAM', occlusion: 'occlusion' };
const NOTES = {
  saliency: '|d logit / d pixel|: the pixels the predicted class is most sensitive to',
  'input-x-gradient': 'pixel × its gradient: red raised the predicted logit, blue lowered it',
  'integrated-gradients': 'the gradient integrated from a blank image (50 steps): red raised the logit, blue lowered it',
  gradcam: 'the last image-shaped layer\'s maps, weighted by the class\'s gradient: where the evidence is',
  occlusion: 'how much the logit drops when a 4×4 patch is blanked: red patches held the evidence',
};

/** Fill the selector with the model's methods, keeping the current choice when it still applies. */
export function offerMethods(methods) {
  const select = $('explain-select');
  const was = select.value;
  select.replaceChildren(el('option', { value: '' }, 'none'),
    ...(methods || []).map((m) => el('option', { value: m }, LABELS[m] ?? m)));
  select.value = (methods || []).includes(was) ? was : '';
  clearWhy();
}

/** The method to ask the server for ('' for none). */
export function chosenMethod() { return $('explain-select').value; }

export function clearWhy() {
  const canvas = $('explain28');
  canvas.getContext('2d').clearRect(0, 0, canvas.width, canvas.height);
  delete canvas.dataset.method;
  $('explain-legend').replaceChildren();
  setText('explain-note', chosenMethod() ? 'Draw a digit to see why.' : 'Pick a method to see why the network said it.');
}

/** Paint the explanation over the input: its colour, half over the ink (dark) and paper (white). */
export function showWhy(why, input, seq) {
  if (!why) { clearWhy(); return; }
  const rows = unpack(why);                             // (28, 28), from values or u8
  const flat = !(why.max > why.min);                    // one value everywhere (Grad-CAM all 0)
  const scale = why.signed ? scaleFor(Math.min(why.min, -1e-12), Math.max(why.max, 1e-12))
    : scaleFor(0, why.max > 0 ? why.max : 1);
  const blend = { rgb: ({ v, ink }) => {
    const c = scale.rgb(v), g = 255 * (1 - ink);
    return [0.6 * c[0] + 0.4 * g, 0.6 * c[1] + 0.4 * g, 0.6 * c[2] + 0.4 * g];
  } };
  const canvas = $('explain28');
  paintGrid(canvas, rows.map((row, y) => row.map((v, x) => ({ v, ink: input[y][x] }))), blend);
  canvas.dataset.method = why.method;
  canvas.dataset.seq = String(seq);
  $('explain-legend').replaceChildren(legend(scale));           // the note below says what the colours mean
  setText('explain-note', `${LABELS[why.method] ?? why.method} of class ${why.target}: ${NOTES[why.method] ?? ''}`
    + (flat ? ` — ${why.min} everywhere for this drawing` : ''));
}
