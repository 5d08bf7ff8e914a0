//! Domain types that the protocol code (`sso/`), the sign-in logic and the storage share,
//! so that none of them reaches into another's types for them.

/// The three kinds of identity provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Okta (OIDC).
    Okta,
    /// Microsoft Entra ID (OIDC).
    Entra,
    /// SAML 2.0.
    Saml,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 3] = [Kind::Okta, Kind::Entra, Kind::Saml];

    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Okta => "okta",
            Kind::Entra => "entra",
            Kind::Saml => "saml",
        }
    }
    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "okta" => Some(Kind::Okta),
            "entra" => Some(Kind::Entra),
            "saml" => Some(Kind::Saml),
            _ => None,
        }
    }
    /// How people call it.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Okta => "Okta",
            Kind::Entra => "Entra ID",
            Kind::Saml => "SAML",
        }
    }
    /// True for the OpenID Connect kinds.
    pub fn is_oidc(self) -> bool {
        !matches!(self, Kind::Saml)
    }
}
