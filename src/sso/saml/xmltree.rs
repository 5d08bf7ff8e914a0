//! A small XML tree (local names, attributes, text, children, byte spans) for the documents
//! the agent reads itself beside samael: encrypted assertions and NameIDs, decrypted payloads
//! and IdP metadata. Parsed with quick-xml; DTDs refused.

use quick_xml::events::Event;

/// An element of a small XML tree: local name, attributes by local name, text, children,
/// and where it is in the document.
#[derive(Debug, Default, Clone)]
pub struct Node {
    /// Local name.
    pub name: String,
    /// Attributes (local names, unescaped values).
    pub attrs: Vec<(String, String)>,
    /// The concatenated text directly inside.
    pub text: String,
    /// Child elements.
    pub children: Vec<Node>,
    /// Byte range of the whole element in the document.
    pub span: (usize, usize),
}

impl Node {
    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }
    /// The children named `name`.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
    /// The value of attribute `name`.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    /// Every descendant (and itself) named `name`, document order.
    pub fn find_all<'a>(&'a self, name: &str, out: &mut Vec<&'a Node>) {
        if self.name == name {
            out.push(self);
        }
        for c in &self.children {
            c.find_all(name, out);
        }
    }
}

/// Parses `xml` (already free of DTDs) into a tree of its root element.
pub fn parse_tree(xml: &str) -> Result<Node, String> {
    let malformed = || "the XML is not well-formed".to_string();
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut stack: Vec<Node> = Vec::new();
    let mut root = None;
    loop {
        let before = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let event = reader.read_event().map_err(|_| malformed())?;
        let after = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        match event {
            Event::Start(_) | Event::Empty(_) if root.is_some() => {
                return Err("the XML has more than one root element".into());
            }
            Event::Start(ref e) | Event::Empty(ref e) => {
                let mut node = Node {
                    name: String::from_utf8_lossy(e.local_name().as_ref()).into_owned(),
                    span: (before, after),
                    ..Node::default()
                };
                for a in e.attributes() {
                    let a = a.map_err(|_| malformed())?;
                    let value = a
                        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .map_err(|_| malformed())?;
                    node.attrs.push((
                        String::from_utf8_lossy(a.key.local_name().as_ref()).into_owned(),
                        value.into_owned(),
                    ));
                }
                if matches!(event, Event::Start(_)) {
                    stack.push(node);
                } else {
                    close(&mut stack, &mut root, node);
                }
            }
            Event::End(_) => {
                let mut node = stack.pop().ok_or_else(malformed)?;
                node.span.1 = after;
                close(&mut stack, &mut root, node);
            }
            Event::Text(t) => {
                if let Some(n) = stack.last_mut() {
                    n.text.push_str(&t.decode().map_err(|_| malformed())?);
                }
            }
            Event::CData(t) => {
                if let Some(n) = stack.last_mut() {
                    n.text.push_str(&t.decode().map_err(|_| malformed())?);
                }
            }
            Event::GeneralRef(r) => {
                let c = match r.resolve_char_ref() {
                    Ok(Some(c)) => Some(c),
                    _ => quick_xml::escape::resolve_predefined_entity(
                        &r.decode().map_err(|_| malformed())?,
                    )
                    .and_then(|s| s.chars().next()),
                };
                if let (Some(n), Some(c)) = (stack.last_mut(), c) {
                    n.text.push(c);
                }
            }
            Event::DocType(_) => return Err("the XML contains a DTD, which is refused".into()),
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(malformed());
    }
    root.ok_or_else(|| "the XML has no root element".into())
}

fn close(stack: &mut [Node], root: &mut Option<Node>, node: Node) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(node),
        None => *root = Some(node),
    }
}
