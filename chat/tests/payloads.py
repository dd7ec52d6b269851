"""Message texts that would run script or inject markup if rendered as HTML."""

XSS_PAYLOADS = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(2)</script>",
    '"><svg onload=alert(3)>',
    "'); alert(4); //",
    "</textarea><b onmouseover=alert(5)>bold</b>",
    '<a href="javascript:alert(6)">link</a>',
    "<iframe src=javascript:alert(7)></iframe>",
    "<details open ontoggle=alert(8)>",
    "</script><script>alert(9)</script>",
    "{{ 7*7 }} ${alert(10)} `${alert(11)}`",
    '<math><mtext><table><mglyph><style><img src=x onerror="alert(12)">',
    "&lt;b&gt;already escaped&lt;/b&gt; &amp; <!-- comment -->",
]
