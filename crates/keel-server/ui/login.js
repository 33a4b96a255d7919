// The sign-in page: posts the form to /api/keel/v1/session, which sets the session cookie,
// then goes back to the page that asked (a path on this server only).

const form = document.getElementById('signin');
const error = document.getElementById('error');

/** Where to go after signing in: `next`, when it is a path here, else the start page. */
function next() {
  const n = new URLSearchParams(location.search).get('next') || '/';
  return n.startsWith('/') && !n.startsWith('//') ? n : '/';
}

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  error.textContent = '';
  const f = new FormData(form);
  const r = await fetch('/api/keel/v1/session', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Requested-With': 'keel-ui' },
    body: JSON.stringify({ username: f.get('username'), password: f.get('password') }),
  });
  if (r.ok) {
    location.replace(next());
  } else {
    let message = r.statusText;
    try { message = (await r.json()).message || message; } catch { /* not JSON */ }
    error.textContent = message;
  }
});
