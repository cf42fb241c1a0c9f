// dashboard_check.js ADMIN_PORT - runs /dashboard's own script in node against
// a live ringway's /metrics and /status, with a minimal DOM, and prints the
// elements it filled as "id=text" lines (used when no headless Chromium is
// installed; test_accesslog.c reads the output).
'use strict';
const port = process.argv[2];
const els = {};
globalThis.document = {getElementById: (id) => (els[id] = els[id] || {textContent: '', innerHTML: ''})};
globalThis.setInterval = () => {};
const realFetch = globalThis.fetch;
globalThis.fetch = (p) => realFetch('http://127.0.0.1:' + port + p);
(async () => {
    const page = await (await realFetch('http://127.0.0.1:' + port + '/dashboard')).text();
    const js = page.split('<script>\n')[1].split('</script>')[0];
    (0, eval)(js);
    setTimeout(() => {
        for (const [id, e] of Object.entries(els))
            console.log(id + '=' + (e.textContent || e.innerHTML.replace(/\n/g, ' ')));
    }, 1500);
})();
