// signoff-browser: the browser half of signoff as an ES module. Its code is signoff.js itself,
// the very file signoff serves at /signoff.js: importing it defines the `signoff` global (once,
// even beside a <script src="/signoff.js">), and this module hands that object out. Where
// there is no browser (a server rendering the bundle) it is undefined.
import './signoff.js';

/** @type {import('./index.js').Signoff | undefined} */
const signoff = typeof window !== 'undefined' ? window.signoff : undefined;

export { signoff };
export default signoff;
