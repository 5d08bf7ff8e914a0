"""Runs a seed sample against a test agent, changing only what a reader would change.

    python3 -u run_sample.py SAMPLE BASE USERNAME

* `http://localhost:29123` (the sample's `base` and its CallbackUrl) becomes BASE, and
  `user@example.com` becomes USERNAME, as plain text substitutions of the sample's source;
* `CODE_FROM_IDP_REDIRECT` is replaced when the sample sends it: the code only exists after
  the sample's first step printed the URL and someone signed in at the IdP, so this reads
  the code as one line from stdin at that moment (the test plays the user and writes it).

Everything else runs exactly as written, with the real `requests` library.
"""

import sys

import requests

PLACEHOLDER = "CODE_FROM_IDP_REDIRECT"


def main() -> None:
    sample, base, username = sys.argv[1:4]
    with open(sample, encoding="utf-8") as f:
        source = f.read()
    source = source.replace("http://localhost:29123", base).replace("user@example.com", username)

    real_post = requests.post

    def post(url, *args, **kwargs):
        body = kwargs.get("json")
        if isinstance(body, dict) and body.get("AuthorizationCode") == PLACEHOLDER:
            code = sys.stdin.readline().strip()
            kwargs["json"] = dict(body, AuthorizationCode=code)
        return real_post(url, *args, **kwargs)

    requests.post = post
    exec(compile(source, sample, "exec"), {"__name__": "__main__"})


if __name__ == "__main__":
    main()
