//! What a partner receives: the postback URL with its query parameters, and the `<Notification>`
//! document (SPEC §6). Written with quick-xml, so every value is escaped.

use quick_xml::Writer;
use time::{OffsetDateTime, macros::format_description};
use url::Url;

use crate::{digest::sha256_hex, input::xml_text, store::CompanyEventRecord};

const XML_DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n";

/// The key of a company's authorization of a partner application, sent as `oauth_token_key`.
/// Stable (derived from the pair), and not a secret: it names the authorization, it grants
/// nothing. Never a token.
pub fn authorization_key(partner_id: &str, company_id: &str) -> String {
    sha256_hex(format!("maestro-authorization\n{partner_id}\n{company_id}").as_bytes())[..32]
        .to_owned()
}

/// The postback URL with the parameters of the event's type appended (any the partner put in
/// its URL are kept).
pub fn postback_target(postback_url: &Url, partner_id: &str, event: &CompanyEventRecord) -> Url {
    let mut target = postback_url.clone();
    let key = authorization_key(partner_id, &event.company_id);
    {
        let mut query = target.query_pairs_mut();
        if event.object_type == "fop" {
            query.append_pair("type", "FOP");
            query.append_pair("oauth_token_key", &key);
        } else {
            query.append_pair("type", &event.object_type);
            query.append_pair("oauth_token_key", &key);
            query.append_pair("userid_type", "login");
            query.append_pair(
                "userid_value",
                event.user_login.as_deref().unwrap_or_default(),
            );
        }
    }
    target
}

/// The URI at which the partner reads the object the event is about.
pub fn object_uri(public_url: &str, event: &CompanyEventRecord) -> String {
    let base = public_url.trim_end_matches('/');
    match (event.object_type.as_str(), &event.trip_id) {
        ("itinerary", Some(trip_id)) => {
            let trip: String = url::form_urlencoded::byte_serialize(trip_id.as_bytes()).collect();
            format!("{base}/api/travel/trip/v1.1/{trip}")
        }
        // Profile and form-of-payment events point at the user's travel profile.
        _ => {
            let mut uri = format!("{base}/api/travelprofile/v2.0/profile");
            if let Some(login) = &event.user_login {
                uri.push_str("?userid_type=login&userid_value=");
                uri.extend(url::form_urlencoded::byte_serialize(login.as_bytes()));
            }
            uri
        }
    }
}

/// `EventDateTime`: UTC, to the second, without an offset, as the legacy format has it.
pub fn event_date_time(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]"
        ))
        .expect("a UTC date-time formats")
}

/// The body of a delivery.
pub fn notification(public_url: &str, event: &CompanyEventRecord) -> String {
    let mut writer = Writer::new_with_indent(Vec::new(), b' ', 2);
    writer
        .create_element("Notification")
        .write_inner_content(|w| {
            let object_type = if event.object_type == "fop" {
                "FOP".to_owned()
            } else {
                event.object_type.to_ascii_uppercase()
            };
            w.create_element("ObjectType")
                .write_text_content(xml_text(&object_type))?;
            w.create_element("ObjectURI")
                .write_text_content(xml_text(&object_uri(public_url, event)))?;
            w.create_element("EventDateTime")
                .write_text_content(xml_text(&event_date_time(event.occurred_at)))?;
            w.create_element("EventType")
                .write_text_content(xml_text(&event.event_type))?;
            w.create_element("Context").write_empty()?;
            if let ("itinerary", Some(trip_id)) = (event.object_type.as_str(), &event.trip_id) {
                w.create_element("TripId")
                    .write_text_content(xml_text(trip_id))?;
            }
            Ok(())
        })
        .expect("writing to memory cannot fail");
    let mut document = String::from(XML_DECLARATION);
    document.push_str(&String::from_utf8(writer.into_inner()).expect("quick-xml writes UTF-8"));
    document
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn event(object_type: &str) -> CompanyEventRecord {
        CompanyEventRecord {
            id: "evt_1".into(),
            object_type: object_type.into(),
            event_type: "CREATE".into(),
            company_id: "c0ffee00-0000-4000-8000-000000000001".into(),
            user_login: Some("cm@example.com".into()),
            trip_id: (object_type == "itinerary")
                .then(|| "naIzQJ0y2DBWjCIQOb2SHTsozwBsHDkdP".into()),
            occurred_at: datetime!(2013-02-13 08:12:35.250 UTC),
        }
    }

    #[test]
    fn the_itinerary_notification_is_the_documented_document() {
        assert_eq!(
            notification("https://maestro.example.com/", &event("itinerary")),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
             <Notification>\n  \
               <ObjectType>ITINERARY</ObjectType>\n  \
               <ObjectURI>https://maestro.example.com/api/travel/trip/v1.1/naIzQJ0y2DBWjCIQOb2SHTsozwBsHDkdP</ObjectURI>\n  \
               <EventDateTime>2013-02-13T08:12:35</EventDateTime>\n  \
               <EventType>CREATE</EventType>\n  \
               <Context/>\n  \
               <TripId>naIzQJ0y2DBWjCIQOb2SHTsozwBsHDkdP</TripId>\n\
             </Notification>"
        );
    }

    #[test]
    fn the_profile_notification_points_at_the_profile_and_escapes_the_login() {
        let mut profile = event("profile");
        profile.user_login = Some("a&b@example.com".into());
        profile.event_type = "UPDATE".into();
        assert_eq!(
            notification("https://maestro.example.com", &profile),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
             <Notification>\n  \
               <ObjectType>PROFILE</ObjectType>\n  \
               <ObjectURI>https://maestro.example.com/api/travelprofile/v2.0/profile?userid_type=login&amp;userid_value=a%26b%40example.com</ObjectURI>\n  \
               <EventDateTime>2013-02-13T08:12:35</EventDateTime>\n  \
               <EventType>UPDATE</EventType>\n  \
               <Context/>\n\
             </Notification>"
        );
    }

    #[test]
    fn text_xml_forbids_never_reaches_the_document() {
        // Intake refuses such text; an event stored before it did is still written well-formed.
        let mut hostile = event("itinerary");
        hostile.trip_id = Some("T\u{0}1\u{b}\u{fffe}".into());
        let document = notification("https://maestro.example.com", &hostile);
        assert!(
            crate::input::forbidden_char(&document).is_none(),
            "{document:?}"
        );
        assert!(document.contains("<TripId>T\u{fffd}1\u{fffd}\u{fffd}</TripId>"));
    }

    #[test]
    fn the_fop_notification_has_no_trip() {
        let mut fop = event("fop");
        fop.user_login = None;
        assert_eq!(
            notification("https://maestro.example.com", &fop),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
             <Notification>\n  \
               <ObjectType>FOP</ObjectType>\n  \
               <ObjectURI>https://maestro.example.com/api/travelprofile/v2.0/profile</ObjectURI>\n  \
               <EventDateTime>2013-02-13T08:12:35</EventDateTime>\n  \
               <EventType>CREATE</EventType>\n  \
               <Context/>\n\
             </Notification>"
        );
    }

    #[test]
    fn query_parameters_follow_the_type_and_keep_the_partners_own() {
        let url = Url::parse("https://partner.example/hook?tenant=7").unwrap();
        let key = authorization_key("groundspan", &event("fop").company_id);
        assert_eq!(
            postback_target(&url, "groundspan", &event("itinerary")).as_str(),
            format!(
                "https://partner.example/hook?tenant=7&type=itinerary&oauth_token_key={key}\
                 &userid_type=login&userid_value=cm%40example.com"
            )
        );
        assert_eq!(
            postback_target(&url, "groundspan", &event("fop")).as_str(),
            format!("https://partner.example/hook?tenant=7&type=FOP&oauth_token_key={key}")
        );
    }

    #[test]
    fn the_authorization_key_is_stable_and_differs_per_pair() {
        let a = authorization_key("groundspan", "c1");
        assert_eq!(a, authorization_key("groundspan", "c1"));
        assert_ne!(a, authorization_key("groundspan", "c2"));
        assert_ne!(a, authorization_key("other", "c1"));
        assert_eq!(a.len(), 32);
        // docs/PARTNERS.md gives partners this derivation, to tell which company a notification
        // is about: the first 32 hex digits of SHA-256("maestro-authorization\n{app}\n{company}").
        assert_eq!(
            authorization_key("groundspan", "b7d12989-0489-471a-81cd-175f8b78afa5"),
            "4254f8e093aabbd9657b1f82a1d3a709"
        );
    }
}
