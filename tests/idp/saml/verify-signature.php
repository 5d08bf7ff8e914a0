<?php
/*
 * Cryptographically verify the XML signatures of a SAML Response with the
 * xmlseclibs copy that Debian's simplesamlphp package ships.
 *
 * usage: php verify-signature.php RESPONSE.xml IDP_CERT.pem
 * Prints one line per signature ("response: ok", "assertion: ok") and exits
 * 0 when the Response AND the Assertion both carry a signature that verifies
 * against the certificate and whose Reference points at the signed element.
 * Used by selfcheck.py as an extra check; not needed to run the IdP.
 */

require '/usr/share/simplesamlphp/vendor/autoload.php';

use RobRichards\XMLSecLibs\XMLSecurityDSig;
use RobRichards\XMLSecLibs\XMLSecurityKey;

if ($argc !== 3) {
    fwrite(STDERR, "usage: php verify-signature.php RESPONSE.xml IDP_CERT.pem\n");
    exit(2);
}
$cert = file_get_contents($argv[2]);
$doc = new DOMDocument();
if (!$doc->loadXML(file_get_contents($argv[1]))) {
    fwrite(STDERR, "not XML\n");
    exit(1);
}
$xp = new DOMXPath($doc);
$xp->registerNamespace('samlp', 'urn:oasis:names:tc:SAML:2.0:protocol');
$xp->registerNamespace('saml', 'urn:oasis:names:tc:SAML:2.0:assertion');

$verify = function (DOMElement $el, string $label) use ($cert): bool {
    $sigNode = null;
    foreach ($el->childNodes as $c) {
        if ($c instanceof DOMElement && $c->localName === 'Signature'
            && $c->namespaceURI === XMLSecurityDSig::XMLDSIGNS) {
            $sigNode = $c;
        }
    }
    if ($sigNode === null) {
        echo "$label: no ds:Signature\n";
        return false;
    }
    $dsig = new XMLSecurityDSig();
    $dsig->idKeys = ['ID'];
    $dsig->sigNode = $sigNode;
    $dsig->canonicalizeSignedInfo();
    try {
        if (!$dsig->validateReference()) {
            echo "$label: reference digest mismatch\n";
            return false;
        }
    } catch (Exception $e) {
        echo "$label: reference error: " . $e->getMessage() . "\n";
        return false;
    }
    // The reference must cover this very element (no signature wrapping).
    $covered = false;
    foreach ($dsig->getValidatedNodes() as $n) {
        if ($n->isSameNode($el)) {
            $covered = true;
        }
    }
    if (!$covered) {
        echo "$label: signature does not reference this element\n";
        return false;
    }
    $key = new XMLSecurityKey(XMLSecurityKey::RSA_SHA256, ['type' => 'public']);
    $key->loadKey($cert, false, true);
    if ($dsig->verify($key) !== 1) {
        echo "$label: SignatureValue does not verify with the IdP certificate\n";
        return false;
    }
    echo "$label: ok\n";
    return true;
};

$ok = true;
$resp = $xp->query('/samlp:Response')->item(0);
$ok = $resp !== null && $verify($resp, 'response') && $ok;
$assertion = $xp->query('/samlp:Response/saml:Assertion')->item(0);
$ok = $assertion !== null && $verify($assertion, 'assertion') && $ok;
exit($ok ? 0 : 1);
